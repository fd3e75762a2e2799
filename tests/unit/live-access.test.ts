import { describe, expect, it } from 'vitest';
import { AuthInvalidation } from '../../src/identity/auth-invalidation.js';
import { LiveAccess } from '../../src/identity/live-access.js';
import type { Principal } from '../../src/identity/principal.js';
import { MemoryCoordinationStore } from '../../src/platform/coordination/memory-store.js';
import { DomainError } from '../../lib/errors.js';
import { createLogger } from '../../lib/logger.js';
import { ManualScheduler } from '../../lib/timers.js';

const MINUTE = 60_000;
const logger = createLogger({ level: 'silent', pretty: false });

const developer: Principal = {
  kind: 'user',
  userId: 'u1',
  tenantId: 't1',
  role: 'DEVELOPER',
  plan: 'free',
  platformAdmin: false,
  sessionId: 's1',
};

/** LiveAccess on a fake clock, with an authenticator the test answers for. */
function harness(options: { expiresAt?: Date } = {}) {
  const time = new ManualScheduler(new Date('2026-01-01T00:00:00Z'));
  const store = new MemoryCoordinationStore(time);
  const invalidation = new AuthInvalidation(store, logger);
  let answer: () => Promise<Principal> = async () => ({ ...developer, expiresAt: options.expiresAt });
  let checks = 0;
  const live = new LiveAccess(
    {
      authenticate: async () => {
        checks += 1;
        return answer();
      },
      invalidation,
      clock: time,
      scheduler: time,
      random: () => 0.5,
      logger,
    },
    { maxLifetimeMs: 60 * MINUTE, recheckIntervalMs: 5 * MINUTE },
  );
  live.start();
  const ends: DomainError[] = [];
  const caller = live.watch({
    credential: 'token',
    principal: { ...developer, expiresAt: options.expiresAt },
    authorize: (p) => {
      if (p.role === 'VIEWER') throw new DomainError('PERMISSION_DENIED', 'role VIEWER lacks permission');
    },
  });
  caller.onEnd((error) => ends.push(error));
  return {
    time,
    invalidation,
    live,
    caller,
    ends,
    checks: () => checks,
    answer: (next: () => Promise<Principal>) => (answer = next),
  };
}

describe('LiveAccess', () => {
  it('re-checks only the calls an invalidation names, and takes a new role without ending the call', async () => {
    const h = harness();
    await h.invalidation.publish({ userId: 'someone-else' });
    await h.caller.settled();
    expect(h.checks()).toBe(0);

    h.answer(async () => ({ ...developer, role: 'ADMIN' }));
    await h.invalidation.publish({ userId: 'u1' });
    await h.caller.settled();
    expect(h.checks()).toBe(1);
    expect(h.caller.current().role).toBe('ADMIN');
    expect(h.ends).toEqual([]);
  });

  it('ends the call with the refusal when the caller may no longer make it', async () => {
    const h = harness();
    h.answer(async () => ({ ...developer, role: 'VIEWER' }));
    await h.invalidation.publish({ sessionId: 's1' });
    await h.caller.settled();
    expect(h.ends.map((e) => e.code)).toEqual(['PERMISSION_DENIED']);
    expect(h.live.size).toBe(0);
  });

  it('coalesces invalidations that arrive during a re-check into one more check', async () => {
    const h = harness();
    let release: () => void = () => undefined;
    h.answer(() => new Promise((resolve) => (release = () => resolve(developer))));
    await h.invalidation.publish({ userId: 'u1' });
    await h.invalidation.publish({ tenantId: 't1' });
    await h.invalidation.publish({ userId: 'u1' });
    expect(h.checks()).toBe(1);
    h.answer(async () => developer);
    release();
    await h.caller.settled();
    expect(h.checks()).toBe(2);
  });

  it('keeps the call when the check itself fails (database down) and checks again on the next tick', async () => {
    const h = harness();
    h.answer(async () => {
      throw new Error('connection refused');
    });
    h.time.advance(5.5 * MINUTE);
    await h.caller.settled();
    expect(h.ends).toEqual([]);
    h.answer(async () => {
      throw new DomainError('UNAUTHENTICATED', 'session has ended; log in again');
    });
    h.time.advance(5.5 * MINUTE);
    await h.caller.settled();
    expect(h.ends.map((e) => e.code)).toEqual(['UNAUTHENTICATED']);
  });

  it('ends at the credential expiry and at the maximum lifetime, and leaves no timer behind', async () => {
    const expiring = harness({ expiresAt: new Date('2026-01-01T00:10:00Z') });
    expiring.time.advance(10 * MINUTE - 1);
    expect(expiring.ends).toEqual([]);
    expiring.time.advance(1);
    expect(expiring.ends.map((e) => [e.code, e.message])).toEqual([
      ['UNAUTHENTICATED', 'the access token expired; reconnect with a fresh one'],
    ]);
    expect(expiring.time.pendingTimers).toBe(0);

    const lasting = harness();
    lasting.time.advance(60 * MINUTE);
    expect(lasting.ends.map((e) => e.code)).toEqual(['UNAVAILABLE']);
    expect(lasting.time.pendingTimers).toBe(0);
  });

  it('stops watching a call that closed by itself', async () => {
    const h = harness();
    h.caller.close();
    expect(h.live.size).toBe(0);
    expect(h.time.pendingTimers).toBe(0);
    await h.invalidation.publish({ userId: 'u1' });
    expect(h.checks()).toBe(0);
  });
});
