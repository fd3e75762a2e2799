import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../platform/logger.js';
import { DomainError } from '../platform/errors.js';

/** One encryption key; the id is stored with every blob it sealed. */
export interface StateKey {
  id: string;
  key: Buffer;
}

/** An auth state as stored: AES-256-GCM ciphertext with its nonce, tag and key id. */
export interface SealedState {
  keyId: string;
  iv: Buffer;
  ciphertext: Buffer;
  tag: Buffer;
}

/**
 * Encrypts session auth states at rest (AES-256-GCM). The session id is the
 * additional authenticated data, so a blob copied onto another session's row
 * does not decrypt. New blobs use the first key; older ones open with
 * whichever key their id names, so keys rotate by putting a new one first.
 */
export class AuthStateCipher {
  private readonly byId: Map<string, Buffer>;

  constructor(private readonly keys: readonly StateKey[]) {
    if (keys.length === 0) throw new Error('at least one session state key is needed');
    for (const { id, key } of keys) {
      if (key.length !== 32) throw new Error(`session state key ${id} must be 32 bytes`);
    }
    this.byId = new Map(keys.map((k) => [k.id, k.key]));
  }

  seal(sessionId: string, plaintext: Uint8Array): SealedState {
    const current = this.keys[0] as StateKey;
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', current.key, iv);
    cipher.setAAD(Buffer.from(sessionId));
    const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return { keyId: current.id, iv, ciphertext, tag: cipher.getAuthTag() };
  }

  open(sessionId: string, sealed: SealedState): Uint8Array {
    const key = this.byId.get(sealed.keyId);
    if (!key) {
      throw new DomainError(
        'INTERNAL',
        `session auth state was sealed with key ${sealed.keyId}, which is not configured (SESSION_STATE_KEYS)`,
      );
    }
    const decipher = createDecipheriv('aes-256-gcm', key, sealed.iv);
    decipher.setAAD(Buffer.from(sessionId));
    decipher.setAuthTag(sealed.tag);
    try {
      return Buffer.concat([decipher.update(sealed.ciphertext), decipher.final()]);
    } catch (cause) {
      throw new DomainError(
        'INTERNAL',
        `session ${sessionId}'s stored credentials do not decrypt with key ${sealed.keyId}: ` +
          'every replica needs the same SESSION_STATE_KEYS',
        { cause },
      );
    }
  }
}

/**
 * The keys to use: the configured ones, or (developer setups only, refused
 * in production by config) a key generated once and kept in the data folder.
 */
export function loadStateKeys(configured: StateKey[] | undefined, dataDir: string, logger: Logger): StateKey[] {
  if (configured) return configured;
  const file = join(dataDir, 'session-state.key');
  if (!existsSync(file)) {
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(file, randomBytes(32).toString('base64'), { mode: 0o600, flag: 'wx' });
  }
  logger.warn(
    { file },
    'SESSION_STATE_KEYS is not set: session credentials are encrypted with a key kept next to the data (development only)',
  );
  const key = Buffer.from(readFileSync(file, 'utf8').trim(), 'base64');
  // Named after the key itself, so two replicas with different local keys say so in their errors.
  return [{ id: `local-${createHash('sha256').update(key).digest('hex').slice(0, 8)}`, key }];
}
