import { describe, expect, it } from 'vitest';
import { judgeFailures, NO_HOLD, type FailureGuardPolicy } from '../../src/fleet/failure-guard.js';

const policy: FailureGuardPolicy = { maxFailedShare: 0.3, minFailures: 3, windowMs: 10_000 };
const now = new Date('2026-11-26T00:00:00Z');

describe('mass-failure guard', () => {
  it.each([
    // [online now, failed in window, trips?]
    [70, 30, false], // exactly 30% is not more than 30%
    [69, 31, true],
    [7, 3, false], // 30% of 10
    [6, 4, true],
    [1, 2, false], // 67% but fewer than the minimum failures
    [0, 3, true], // the whole fleet
    [0, 0, false],
  ])('with %i online and %i failed in the window, trips: %s', (online, recentFailures, trips) => {
    const judgement = judgeFailures(NO_HOLD, { online, recentFailures, stillFailedSinceHold: 0 }, policy, now);
    expect(judgement.action).toBe(trips ? 'trip' : 'none');
    if (judgement.action === 'trip') {
      expect(judgement.hold).toMatchObject({
        active: true,
        since: now,
        failedWorkers: recentFailures,
        fleetSize: online + recentFailures,
      });
      expect(judgement.hold.reason).toContain(`${recentFailures} of ${online + recentFailures} workers failed`);
    }
  });

  const held = { ...NO_HOLD, active: true, since: now, failedWorkers: 40, fleetSize: 100 };

  it('keeps the hold while the failed workers stay failed, even once the window has passed', () => {
    expect(judgeFailures(held, { online: 60, recentFailures: 0, stillFailedSinceHold: 40 }, policy, now)).toEqual({
      action: 'none',
    });
  });

  it('keeps the hold while failures keep coming', () => {
    expect(judgeFailures(held, { online: 60, recentFailures: 35, stillFailedSinceHold: 0 }, policy, now).action).toBe(
      'none',
    );
  });

  it('clears the hold once the failed workers are back', () => {
    const judgement = judgeFailures(held, { online: 98, recentFailures: 0, stillFailedSinceHold: 2 }, policy, now);
    expect(judgement.action).toBe('clear');
  });
});
