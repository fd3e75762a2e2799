import {
  EnvelopeCipher,
  loadEncryptionKeys,
  type EncryptionKey,
  type SealedBlob,
} from '../platform/crypto/envelope-cipher.js';
import type { Logger } from '../../lib/logger.js';

/** One SESSION_STATE_KEYS key. */
export type StateKey = EncryptionKey;

/** An auth state as stored in session_auth_state. */
export type SealedState = SealedBlob;

/**
 * Seals session auth states: `seal(sessionId, state)`. The session id is the
 * additional authenticated data, so a blob copied onto another session's row
 * does not open.
 */
export type AuthStateCipher = EnvelopeCipher;

export const SESSION_STATE_KEYS = 'SESSION_STATE_KEYS';

export function createAuthStateCipher(keys: readonly StateKey[]): AuthStateCipher {
  return new EnvelopeCipher(keys, {
    variable: SESSION_STATE_KEYS,
    describe: (sessionId) => `session ${sessionId}'s auth state`,
  });
}

/** SESSION_STATE_KEYS, or in developer setups a key kept in the data folder. */
export function loadStateKeys(configured: StateKey[] | undefined, dataDir: string, logger: Logger): StateKey[] {
  return loadEncryptionKeys(
    configured,
    { dataDir, file: 'session-state.key', variable: SESSION_STATE_KEYS, protects: 'session credentials' },
    logger,
  );
}
