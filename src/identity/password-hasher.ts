import { randomBytes } from 'node:crypto';
import argon2 from 'argon2';

/** argon2id cost parameters (OWASP's minimum is 19 MiB, t=2, p=1). */
export interface PasswordHashParams {
  memoryCostKiB: number;
  timeCost: number;
  parallelism: number;
}

/**
 * Hashes and checks passwords with argon2id. Keeps a hash of a random
 * password so that checking an unknown email costs the same time as a wrong
 * password (no user enumeration by timing).
 */
export class PasswordHasher {
  private dummyHash: Promise<string>;

  constructor(private readonly params: PasswordHashParams) {
    // A password nobody knows: node:crypto, not the injected (possibly seeded) random; nothing needs it repeatable.
    this.dummyHash = this.hash(randomBytes(32).toString('base64url'));
  }

  hash(password: string): Promise<string> {
    return argon2.hash(password, this.options());
  }

  async verify(hash: string, password: string): Promise<boolean> {
    try {
      return await argon2.verify(hash, password);
    } catch {
      return false;
    }
  }

  /** Spends the time of one verification and returns false: used when the account does not exist. */
  async verifyNothing(password: string): Promise<false> {
    await this.verify(await this.dummyHash, password);
    return false;
  }

  /** True when `hash` was made with other parameters and should be replaced at the next login. */
  needsRehash(hash: string): boolean {
    return argon2.needsRehash(hash, this.options());
  }

  private options() {
    return {
      type: argon2.argon2id,
      memoryCost: this.params.memoryCostKiB,
      timeCost: this.params.timeCost,
      parallelism: this.params.parallelism,
    };
  }
}
