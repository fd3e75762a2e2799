import type { Clock } from '../../lib/clock.js';
import type { AttemptCount, CoordinationStore } from '../platform/coordination/coordination-store.js';
import { DomainError } from '../../lib/errors.js';
import { sha256Hex } from './secrets.js';

/** Failed-password policy, compiled once from configuration (LOGIN_* variables). */
export interface LoginThrottleOptions {
  /** Failures per (account, IP) before that IP is locked out of that account; per user for ChangePassword. */
  maxFailures: number;
  /** Failures per IP, on any accounts, before that IP is locked out (credential stuffing). */
  maxFailuresPerIp: number;
  windowMs: number;
  lockoutMs: number;
  /** Failures on an account, from any IP, after which IPs that failed on it must wait between attempts. */
  delayAfterFailures: number;
  delayBaseMs: number;
  delayMaxMs: number;
}

/** One counted password check; the caller reports how it went. */
export interface PasswordAttempt {
  succeeded(): Promise<void>;
  failed(): Promise<void>;
}

/**
 * Throttles password guessing without letting anyone lock a victim out.
 *
 * A hard per-account lock-out is a denial-of-service anyone can trigger, so
 * for Login there is none:
 * - (account, IP): after LOGIN_MAX_FAILURES failures that IP, and only that
 *   IP, is locked out of that account for LOGIN_LOCKOUT_MS.
 * - IP, across accounts: after LOGIN_MAX_FAILURES_PER_IP failures the IP is
 *   locked out (credential stuffing).
 * - account, across IPs: after LOGIN_DELAY_AFTER_FAILURES failures, an IP
 *   that has itself failed on the account must wait LOGIN_DELAY_BASE_MS after
 *   the account's last failure, doubling with each further failure up to
 *   LOGIN_DELAY_MAX_MS. The wait is one gate per account that lets one
 *   attempt through at a time, so many failing IPs together guess no faster.
 * An IP that has not failed on the account skips the delay: the owner with
 * the right password gets in at once, whatever an attacker elsewhere did.
 *
 * Failures count within LOGIN_FAILURE_WINDOW_MS. Every attempt is counted
 * *before* the password is checked (atomically, in the coordination store
 * every replica shares), so parallel guesses cannot slip past a limit; a
 * success gives its count back and clears the (account, IP) pair. Refusals
 * are RESOURCE_EXHAUSTED with retry-after, decided before the account is
 * looked up, so they say nothing about whether it exists. Times come from
 * the injected clock; keys hold a hash of the email, never the email.
 *
 * ChangePassword has its own counter per user (LOGIN_MAX_FAILURES, then
 * LOGIN_LOCKOUT_MS): a stolen access token must not become a password
 * oracle, and its failures must not touch the owner's logins.
 */
export class LoginThrottle {
  constructor(
    private readonly store: CoordinationStore,
    private readonly clock: Clock,
    private readonly options: LoginThrottleOptions,
  ) {}

  /** Counts a login attempt on `email` (normalised) from `ip`, or refuses it with the wait. */
  async beginLogin(email: string, ip: string): Promise<PasswordAttempt> {
    const o = this.options;
    const now = this.nowMs();
    const account = sha256Hex(email);
    const keys = {
      ip: `login:ip:${ip}`,
      pair: `login:pair:${account}:${ip}`,
      account: `login:account:${account}`,
      gate: `login:gate:${account}`,
    };
    const lockout = { windowMs: o.windowMs, blockMs: o.lockoutMs };
    const [byIp, byPair, byAccount] = await Promise.all([
      this.store.countAttempt(keys.ip, now, { ...lockout, limit: o.maxFailuresPerIp }),
      this.store.countAttempt(keys.pair, now, { ...lockout, limit: o.maxFailures }),
      this.store.countAttempt(keys.account, now, { windowMs: o.windowMs }),
    ]);
    let retryAtMs = Math.max(byIp.retryAtMs, byPair.retryAtMs);
    // Counts include attempts still in flight: a burst from a fresh IP is
    // treated as failing from its second attempt on.
    const failedHereBefore = byPair.count > 1;
    const failuresBefore = byAccount.count - 1;
    if (retryAtMs === 0 && failedHereBefore && failuresBefore >= o.delayAfterFailures) {
      // Shut the gate behind this attempt at once (as if it fails) so racing
      // attempts wait; failed() then holds it from the failure's own time.
      const gate = await this.store.holdGate(keys.gate, now, now + this.delayAfter(failuresBefore + 1), {
        ifOpen: true,
      });
      if (!gate.held) retryAtMs = gate.openAtMs;
    }
    if (retryAtMs > 0) {
      await Promise.all([
        this.giveBack(keys.ip, byIp, now),
        this.giveBack(keys.pair, byPair, now),
        this.giveBack(keys.account, byAccount, now),
      ]);
      throw tooManyFailures(retryAtMs - now);
    }
    return {
      succeeded: async () => {
        const at = this.nowMs();
        await Promise.all([
          this.store.uncountAttempt(keys.ip, at),
          this.store.uncountAttempt(keys.account, at),
          this.store.clearAttempts(keys.pair),
        ]);
      },
      failed: async () => {
        if (byAccount.count < o.delayAfterFailures) return;
        const at = this.nowMs();
        await this.store.holdGate(keys.gate, at, at + this.delayAfter(byAccount.count));
      },
    };
  }

  /** Counts a ChangePassword check of the current password for `userId`, or refuses it with the wait. */
  async beginPasswordChange(userId: string): Promise<PasswordAttempt> {
    const key = `password-change:${userId}`;
    const now = this.nowMs();
    const result = await this.store.countAttempt(key, now, {
      windowMs: this.options.windowMs,
      limit: this.options.maxFailures,
      blockMs: this.options.lockoutMs,
    });
    if (!result.allowed) throw tooManyFailures(result.retryAtMs - now);
    return {
      succeeded: () => this.store.clearAttempts(key),
      failed: async () => {},
    };
  }

  /** The wait after the account's `failures`-th failure (at least delayAfterFailures). */
  private delayAfter(failures: number): number {
    const { delayAfterFailures, delayBaseMs, delayMaxMs } = this.options;
    // Capped exponent: 2^30 times any base is already past every sane cap.
    const doublings = Math.min(30, Math.max(0, failures - delayAfterFailures));
    return Math.min(delayMaxMs, delayBaseMs * 2 ** doublings);
  }

  private async giveBack(key: string, count: AttemptCount, nowMs: number): Promise<void> {
    if (count.allowed) await this.store.uncountAttempt(key, nowMs);
  }

  private nowMs(): number {
    return this.clock.now().getTime();
  }
}

function tooManyFailures(waitMs: number): DomainError {
  const retryAfterSeconds = Math.max(1, Math.ceil(waitMs / 1000));
  return new DomainError('RESOURCE_EXHAUSTED', `too many failed attempts; try again in ${retryAfterSeconds} s`, {
    details: { 'retry-after': retryAfterSeconds },
  });
}
