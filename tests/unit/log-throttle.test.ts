import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../lib/clock.js';
import { LogThrottle } from '../../src/platform/log-throttle.js';

function setup(maxKeys = 100) {
  const clock = new ManualClock();
  const throttle = new LogThrottle({ clock, intervalMs: 1000, maxKeys });
  const lines: { key: string; suppressed: number }[] = [];
  const log = (key: string) => throttle.log(key, (suppressed) => lines.push({ key, suppressed }));
  return { clock, throttle, lines, log };
}

describe('LogThrottle', () => {
  it('logs the first occurrence of a key and only counts the rest within the interval', () => {
    const { lines, log } = setup();
    for (let i = 0; i < 10_000; i++) log('worker-1:stale');
    expect(lines).toEqual([{ key: 'worker-1:stale', suppressed: 0 }]);
  });

  it('logs the first occurrence after the interval with the count suppressed before it', () => {
    const { clock, lines, log } = setup();
    log('k');
    for (let i = 0; i < 41; i++) log('k');
    clock.advance(999);
    log('k');
    expect(lines).toHaveLength(1);
    clock.advance(1);
    log('k');
    expect(lines).toEqual([
      { key: 'k', suppressed: 0 },
      { key: 'k', suppressed: 42 },
    ]);
  });

  it('writes at most one line per interval per key under a steady flood', () => {
    const { clock, lines, log } = setup();
    // 100 occurrences every 10 ms for 10 s: 100,000 occurrences.
    for (let tick = 0; tick < 1000; tick++) {
      for (let i = 0; i < 100; i++) log('k');
      clock.advance(10);
    }
    expect(lines.length).toBeLessThanOrEqual(10);
    // Once the last window is over, a summary line reports its count: every
    // occurrence was then either logged (one per line but the summary) or counted.
    clock.advance(1000);
    log('other');
    const forK = lines.filter((line) => line.key === 'k');
    expect(forK.length).toBeLessThanOrEqual(11);
    const suppressed = forK.reduce((sum, line) => sum + line.suppressed, 0);
    expect(forK.length - 1 + suppressed).toBe(100_000);
  });

  it('keeps keys apart: another worker or cause is logged on its own', () => {
    const { lines, log } = setup();
    log('worker-1:stale');
    log('worker-1:stale');
    log('worker-2:stale');
    log('worker-1:late_response');
    expect(lines.map((line) => line.key)).toEqual(['worker-1:stale', 'worker-2:stale', 'worker-1:late_response']);
  });

  it('reports what a flood that stopped left unreported once its window is over', () => {
    const { clock, lines, log } = setup();
    for (let i = 0; i < 5; i++) log('quiet-now');
    clock.advance(1000);
    log('other');
    expect(lines).toEqual([
      { key: 'quiet-now', suppressed: 0 },
      { key: 'other', suppressed: 0 },
      { key: 'quiet-now', suppressed: 4 },
    ]);
  });

  it('remembers at most maxKeys windows, reporting an evicted one’s count', () => {
    const { throttle, lines, log } = setup(3);
    log('a');
    log('a');
    for (const key of ['b', 'c', 'd', 'e', 'f']) log(key);
    expect(throttle.size).toBe(3);
    expect(lines).toContainEqual({ key: 'a', suppressed: 1 });
    for (let i = 0; i < 10_000; i++) log(`key-${i}`);
    expect(throttle.size).toBe(3);
  });
});
