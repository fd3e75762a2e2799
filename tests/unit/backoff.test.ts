import { describe, expect, it } from 'vitest';
import { backoffDelay, defaultBackoff } from '../../lib/backoff.js';

describe('reconnect backoff', () => {
  const policy = { initialMs: 500, maxMs: 30_000, multiplier: 2 };

  it('doubles the ceiling per attempt and caps it', () => {
    const ceilings = [0, 1, 2, 3, 4, 5, 6, 7, 10].map((attempt) => backoffDelay(attempt, policy, () => 1));
    expect(ceilings).toEqual([500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  });

  it('never waits less than half the ceiling, so agents cannot retry in a tight loop', () => {
    expect(backoffDelay(3, policy, () => 0)).toBe(2000);
  });

  it('spreads a fleet that disconnected together', () => {
    let seed = 42;
    const random = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
    const delays = Array.from({ length: 200 }, () => backoffDelay(4, policy, random));
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(4000);
    expect(Math.max(...delays)).toBeLessThanOrEqual(8000);
    expect(new Set(delays).size).toBeGreaterThan(150);
  });

  it('uses the documented defaults', () => {
    expect(defaultBackoff).toEqual(policy);
  });
});
