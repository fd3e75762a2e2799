import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import type { AuthStateCipher } from './auth-state-cipher.js';
import { SessionRepository } from './session.repository.js';

/**
 * Sessions' auth states (WhatsApp credentials), encrypted at rest: sealed
 * when a worker checkpoints one, opened only on the replica that sends it
 * down a worker's stream in an AssignSession.
 */
export class AuthStates {
  constructor(
    private readonly orm: MikroORM,
    private readonly cipher: AuthStateCipher,
  ) {}

  /** The session's auth state, decrypted; empty for a session never linked. */
  async open(sessionId: string): Promise<Uint8Array> {
    const sealed = await new SessionRepository(this.orm.em.fork()).readAuthState(sessionId);
    return sealed ? this.cipher.open(sessionId, sealed) : new Uint8Array();
  }

  /** Stores a checkpoint over the previous one (inside the caller's transaction). */
  async write(em: EntityManager, sessionId: string, state: Uint8Array, now: Date): Promise<void> {
    await new SessionRepository(em).writeAuthState(sessionId, this.cipher.seal(sessionId, state), now);
  }
}
