import { RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { CoordinationStore } from '../platform/coordination/coordination-store.js';
import { DomainError } from '../platform/errors.js';

/** Lock-out policy for failed logins, compiled from configuration. */
export interface LoginThrottleOptions {
  maxFailuresPerAccount: number;
  maxFailuresPerIp: number;
  windowMs: number;
  lockoutMs: number;
}

/**
 * Locks out an account, and separately an IP, after repeated failed logins
 * within a window. Counters live in the coordination store so every replica
 * sees them.
 */
export class LoginThrottle {
  private readonly byAccount: RateLimiterAbstract;
  private readonly byIp: RateLimiterAbstract;

  private readonly lockoutSeconds: number;

  constructor(store: CoordinationStore, options: LoginThrottleOptions) {
    const window = Math.max(1, Math.ceil(options.windowMs / 1000));
    this.lockoutSeconds = Math.max(1, Math.ceil(options.lockoutMs / 1000));
    this.byAccount = store.createRateLimiter({
      keyPrefix: 'login-fail:account',
      points: options.maxFailuresPerAccount,
      durationSeconds: window,
    });
    this.byIp = store.createRateLimiter({
      keyPrefix: 'login-fail:ip',
      points: options.maxFailuresPerIp,
      durationSeconds: window,
    });
  }

  /** Refuses with RESOURCE_EXHAUSTED (and the time to wait) while the account or the IP is locked out. */
  async assertAllowed(email: string, ip: string): Promise<void> {
    const [account, address] = await Promise.all([this.byAccount.get(email), this.byIp.get(ip)]);
    const waits = [account, address]
      .filter((r) => r !== null && r.remainingPoints <= 0)
      .map((r) => r?.msBeforeNext ?? 0);
    if (waits.length > 0) {
      const retryAfterSeconds = Math.ceil(Math.max(...waits) / 1000);
      throw new DomainError('RESOURCE_EXHAUSTED', `too many failed logins; try again in ${retryAfterSeconds} s`, {
        details: { 'retry-after': retryAfterSeconds },
      });
    }
  }

  async recordFailure(email: string, ip: string): Promise<void> {
    await Promise.all([this.count(this.byAccount, email), this.count(this.byIp, ip)]);
  }

  async recordSuccess(email: string): Promise<void> {
    await this.byAccount.delete(email);
  }

  // Counts one failure; the one that reaches the limit starts the lock-out.
  private async count(limiter: RateLimiterAbstract, key: string): Promise<void> {
    const result = await limiter.consume(key, 1).catch((refused: unknown) => refused);
    if (result instanceof RateLimiterRes && result.remainingPoints <= 0) {
      await limiter.block(key, this.lockoutSeconds);
    }
  }
}
