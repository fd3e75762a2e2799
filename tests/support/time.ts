import type { ManualScheduler } from '../../lib/timers.js';

/** Lets every queued promise continuation run (a macrotask turn: no real time passes to speak of). */
function drainMicrotasks(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Runs whatever is due now on `time`, and the promise continuations that
 * follow, until nothing more is: after it, code driven by `time` has done
 * everything it would do before the clock moves again.
 */
export async function settle(time: ManualScheduler): Promise<void> {
  for (let round = 0; round < 1_000; round++) {
    await drainMicrotasks();
    if (time.msUntilNext() !== 0) return;
    time.advance(0);
  }
  throw new Error('still busy after 1000 rounds at the same instant: a timer keeps rescheduling itself with no delay');
}

/**
 * Moves `time` forward `ms`, stopping at each timer on the way and settling
 * after it, so what a timer sets off (a reconnect after the backoff, a fence
 * after a heartbeat tick) happens at that timer's instant, as with real time.
 */
export async function advance(time: ManualScheduler, ms: number): Promise<void> {
  const target = time.monotonicMs() + ms;
  await settle(time);
  for (;;) {
    const next = time.msUntilNext();
    if (next === undefined || time.monotonicMs() + next > target) break;
    time.advance(next);
    await settle(time);
  }
  time.advance(target - time.monotonicMs());
  await settle(time);
}
