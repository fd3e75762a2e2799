import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../lib/clock.js';
import { MemoryCoordinationStore } from '../../src/platform/coordination/memory-store.js';
import { DomainError } from '../../lib/errors.js';
import { LoginThrottle, type LoginThrottleOptions } from '../../src/identity/login-throttle.js';

const OPTIONS: LoginThrottleOptions = {
  maxFailures: 5,
  maxFailuresPerIp: 8,
  windowMs: 15 * 60_000,
  lockoutMs: 15 * 60_000,
  delayAfterFailures: 3,
  delayBaseMs: 1000,
  delayMaxMs: 60_000,
};

function setUp(options: Partial<LoginThrottleOptions> = {}) {
  const clock = new ManualClock();
  const throttle = new LoginThrottle(new MemoryCoordinationStore(clock), clock, { ...OPTIONS, ...options });
  /** One login attempt that checks the password and fails; the refusal's retry-after, or 0 when it got through. */
  const fail = async (email: string, ip: string): Promise<number> => {
    try {
      await (await throttle.beginLogin(email, ip)).failed();
      return 0;
    } catch (error) {
      return retryAfter(error);
    }
  };
  return { clock, throttle, fail };
}

function retryAfter(error: unknown): number {
  if (!(error instanceof DomainError) || error.code !== 'RESOURCE_EXHAUSTED') throw error;
  return Number(error.details['retry-after']);
}

describe('login throttle (in-process store, fake clock)', () => {
  it('locks only the failing IP out of the account, never the account', async () => {
    const { clock, throttle, fail } = setUp();
    for (let i = 0; i < 3; i++) expect(await fail('victim@example.com', 'attacker')).toBe(0);
    // Past the delay threshold the attacker waits before each attempt, until its five are used up.
    const waits: number[] = [];
    for (let wait = 0; wait < 900; wait = await fail('victim@example.com', 'attacker')) {
      if (wait > 0) waits.push(wait);
      clock.advance(wait * 1000);
    }
    expect(waits).toEqual([1, 2]);
    await expect(throttle.beginLogin('victim@example.com', 'owner')).resolves.toBeDefined();
  });

  it('lets exactly one of a burst from failing IPs through the gate when it opens', async () => {
    const { clock, throttle, fail } = setUp();
    for (const ip of ['a', 'b', 'c']) expect(await fail('victim@example.com', ip)).toBe(0);
    clock.advance(1000);
    const outcomes = await Promise.allSettled(
      ['a', 'b', 'c', 'a', 'b', 'c'].map((ip) => throttle.beginLogin('victim@example.com', ip)),
    );
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
    for (const o of outcomes) if (o.status === 'rejected') expect(retryAfter(o.reason)).toBeGreaterThanOrEqual(1);
  });

  it('locks an IP out across accounts after maxFailuresPerIp failures, not other IPs', async () => {
    const { throttle, fail } = setUp();
    for (let i = 0; i < 8; i++) expect(await fail(`user${i}@example.com`, 'stuffer')).toBe(0);
    expect(await fail('fresh@example.com', 'stuffer')).toBe(900);
    await expect(throttle.beginLogin('fresh@example.com', 'someone-else')).resolves.toBeDefined();
  });

  it('forgets the failures of an IP on an account once the right password comes from it', async () => {
    const { throttle, fail } = setUp({ delayAfterFailures: 100, maxFailuresPerIp: 100 });
    for (let i = 0; i < 4; i++) expect(await fail('owner@example.com', 'home')).toBe(0);
    await (await throttle.beginLogin('owner@example.com', 'home')).succeeded();
    for (let i = 0; i < 5; i++) expect(await fail('owner@example.com', 'home')).toBe(0);
    expect(await fail('owner@example.com', 'home')).toBe(900);
  });

  it('limits ChangePassword per user until the lock-out passes, without touching logins', async () => {
    const { clock, throttle } = setUp();
    for (let i = 0; i < 5; i++) await (await throttle.beginPasswordChange('user-1')).failed();
    const refused = await throttle.beginPasswordChange('user-1').catch(retryAfter);
    expect(refused).toBe(900);
    await expect(throttle.beginPasswordChange('user-2')).resolves.toBeDefined();
    clock.advance(900_000);
    await (await throttle.beginPasswordChange('user-1')).succeeded();
    await expect(throttle.beginPasswordChange('user-1')).resolves.toBeDefined();
  });
});
