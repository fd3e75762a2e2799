import type { Clock } from '../../lib/clock.js';

/** Settings of a LogThrottle; the clock is the injected one, so tests move time by hand. */
export interface LogThrottleOptions {
  clock: Clock;
  /** At most one line per key within this long (monotonic ms). */
  intervalMs: number;
  /** Keys remembered at once; beyond it the least recently started window is closed early. */
  maxKeys: number;
}

/** Writes one log line; `suppressed` is how many occurrences of the key went unlogged before it. */
export type ThrottledWrite = (suppressed: number) => void;

interface Window {
  startedMs: number;
  suppressed: number;
  /** The latest occurrence's writer, used for the summary when the window closes unreported. */
  write: ThrottledWrite;
}

/**
 * Keeps a caller who can make us log (a worker sending bad events, say)
 * from writing one line per occurrence. Per key, the first occurrence is
 * logged; the rest within `intervalMs` are only counted; the first one after
 * the interval is logged with the count of those suppressed. A window that
 * closes with occurrences still unreported (the flood stopped) gets one
 * summary line when any later call finds it over, or when it is evicted.
 * So a key writes at most one line per interval, plus one summary, and
 * memory stays within `maxKeys` windows whatever the keys are.
 */
export class LogThrottle {
  private readonly windows = new Map<string, Window>();
  private lastSweepMs = -Infinity;

  constructor(private readonly options: LogThrottleOptions) {}

  /** Writes now (first occurrence, or first after the interval) or counts the occurrence. */
  log(key: string, write: ThrottledWrite): void {
    const nowMs = this.options.clock.monotonicMs();
    const current = this.windows.get(key);
    if (current && nowMs - current.startedMs < this.options.intervalMs) {
      current.suppressed += 1;
      current.write = write;
    } else {
      // Re-inserted, so the Map's order stays the order windows started (oldest first).
      this.windows.delete(key);
      this.open(key, nowMs, write);
      write(current?.suppressed ?? 0);
    }
    this.sweep(nowMs);
  }

  /** Windows open now (for tests and diagnostics). */
  get size(): number {
    return this.windows.size;
  }

  private open(key: string, nowMs: number, write: ThrottledWrite): void {
    if (this.windows.size >= this.options.maxKeys) {
      const [oldestKey, oldest] = this.windows.entries().next().value as [string, Window];
      this.windows.delete(oldestKey);
      if (oldest.suppressed > 0) oldest.write(oldest.suppressed);
    }
    this.windows.set(key, { startedMs: nowMs, suppressed: 0, write });
  }

  // Closes windows that are over, at most once per interval: each is visited
  // once per sweep, so a flood of calls costs one Map walk per interval.
  private sweep(nowMs: number): void {
    if (nowMs - this.lastSweepMs < this.options.intervalMs) return;
    this.lastSweepMs = nowMs;
    for (const [key, window] of this.windows) {
      // Oldest first: the first window still open ends the walk.
      if (nowMs - window.startedMs < this.options.intervalMs) break;
      this.windows.delete(key);
      if (window.suppressed > 0) window.write(window.suppressed);
    }
  }
}
