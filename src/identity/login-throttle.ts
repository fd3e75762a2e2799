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
 * Locks out an account, and separately an IP, after repeated failed password
 * checks within a window. Every attempt takes its point *before* the password
 * is checked (atomically, in the coordination store shared by all replicas),
 * so a burst of parallel guesses cannot slip past the limit; a success gives
 * the point back.
 */
export class LoginThrottle {
  private readonly byAccount: RateLimiterAbstract;
  private readonly byIp: RateLimiterAbstract;

  constructor(store: CoordinationStore, options: LoginThrottleOptions) {
    const window = Math.max(1, Math.ceil(options.windowMs / 1000));
    const lockout = Math.max(1, Math.ceil(options.lockoutMs / 1000));
    this.byAccount = store.createRateLimiter({
      keyPrefix: 'login:account',
      points: options.maxFailuresPerAccount,
      durationSeconds: window,
      blockSeconds: lockout,
    });
    this.byIp = store.createRateLimiter({
      keyPrefix: 'login:ip',
      points: options.maxFailuresPerIp,
      durationSeconds: window,
      blockSeconds: lockout,
    });
  }

  /** Takes one attempt for the account and the IP, or refuses with RESOURCE_EXHAUSTED and the wait. */
  async beginAttempt(account: string, ip: string): Promise<void> {
    const [forAccount, forIp] = await Promise.all([take(this.byAccount, account), take(this.byIp, ip)]);
    if (!forAccount.refused && !forIp.refused) return;
    // Refused: give back the point the other limiter did grant.
    if (!forAccount.refused) await this.byAccount.reward(account, 1);
    if (!forIp.refused) await this.byIp.reward(ip, 1);
    const refused = [forAccount, forIp].filter((r) => r.refused);
    const retryAfterSeconds = Math.max(1, Math.ceil(Math.max(...refused.map((r) => r.msBeforeNext)) / 1000));
    throw new DomainError('RESOURCE_EXHAUSTED', `too many failed attempts; try again in ${retryAfterSeconds} s`, {
      details: { 'retry-after': retryAfterSeconds },
    });
  }

  /** The password was right: the attempt does not count. */
  async succeeded(account: string, ip: string): Promise<void> {
    await Promise.all([this.byAccount.delete(account), this.byIp.reward(ip, 1)]);
  }
}

async function take(limiter: RateLimiterAbstract, key: string): Promise<{ refused: boolean; msBeforeNext: number }> {
  try {
    const result = await limiter.consume(key, 1);
    return { refused: false, msBeforeNext: result.msBeforeNext };
  } catch (refusal) {
    if (refusal instanceof RateLimiterRes) return { refused: true, msBeforeNext: refusal.msBeforeNext };
    throw refusal;
  }
}
