/**
 * Time comes from here so leases, timeouts and backoff can be tested with a
 * fake clock instead of sleeping.
 */
export interface Clock {
  /** Wall-clock time, for timestamps shown to people and stored in the database. */
  now(): Date;
  /** Monotonic milliseconds, for measuring intervals; unaffected by clock steps. */
  monotonicMs(): number;
}

export const systemClock: Clock = {
  now: () => new Date(),
  monotonicMs: () => performance.now(),
};

/** A clock that only moves when told to; for tests. */
export class ManualClock implements Clock {
  private wallMs: number;
  private monoMs = 0;

  constructor(start = new Date('2026-01-01T00:00:00Z')) {
    this.wallMs = start.getTime();
  }

  now(): Date {
    return new Date(this.wallMs);
  }

  monotonicMs(): number {
    return this.monoMs;
  }

  advance(ms: number): void {
    this.wallMs += ms;
    this.monoMs += ms;
  }
}
