import { ManualClock } from './clock.js';

/** A pending timer; cancelling one that already ran (or was cancelled) does nothing. */
export interface Timer {
  cancel(): void;
}

/**
 * Timers come from here, like time comes from a Clock, so expiries, QR
 * rotations and receipt delays run under a fake clock in tests without
 * sleeping.
 */
export interface Scheduler {
  /** Runs `task` once, `delayMs` from now (0 means "as soon as the scheduler runs due work"). */
  schedule(delayMs: number, task: () => void): Timer;
}

/**
 * Runs `task` every `intervalMs` until the returned timer is cancelled. The
 * next run is scheduled when one starts, so a slow async task does not make
 * runs pile up only if the task guards itself (as sweeps and flushes do).
 */
export function every(scheduler: Scheduler, intervalMs: number, task: () => void): Timer {
  let current: Timer | undefined;
  let cancelled = false;
  const arm = () => {
    current = scheduler.schedule(intervalMs, () => {
      if (cancelled) return;
      arm();
      task();
    });
  };
  arm();
  return {
    cancel: () => {
      cancelled = true;
      current?.cancel();
    },
  };
}

export const systemScheduler: Scheduler = {
  schedule(delayMs, task) {
    const handle = setTimeout(task, Math.max(0, delayMs));
    return { cancel: () => clearTimeout(handle) };
  },
};

interface PendingTask {
  dueMs: number;
  /** Insertion order: tasks due at the same time run in the order they were scheduled. */
  order: number;
  task: () => void;
  cancelled: boolean;
}

/**
 * A clock and scheduler in one that only move when told to; for tests. Pass
 * the same instance as an engine's `clock` and `scheduler`. advance(ms) runs
 * every task that falls due on the way, in due order, with the clock set to
 * each task's due time while it runs (so timestamps it takes are exact), and
 * also tasks those tasks schedule within the window.
 */
export class ManualScheduler extends ManualClock implements Scheduler {
  private readonly pending: PendingTask[] = [];
  private nextOrder = 0;

  schedule(delayMs: number, task: () => void): Timer {
    const entry: PendingTask = {
      dueMs: this.monotonicMs() + Math.max(0, delayMs),
      order: this.nextOrder++,
      task,
      cancelled: false,
    };
    this.pending.push(entry);
    return {
      cancel: () => {
        entry.cancelled = true;
        const index = this.pending.indexOf(entry);
        if (index >= 0) this.pending.splice(index, 1);
      },
    };
  }

  override advance(ms: number): void {
    const target = this.monotonicMs() + ms;
    for (;;) {
      const next = this.nextDue();
      if (next === undefined || next.dueMs > target) break;
      this.pending.splice(this.pending.indexOf(next), 1);
      super.advance(next.dueMs - this.monotonicMs());
      next.task();
    }
    super.advance(target - this.monotonicMs());
  }

  /** Timers scheduled and neither run nor cancelled: a stopped engine must leave none. */
  get pendingTimers(): number {
    return this.pending.length;
  }

  /** Milliseconds until the next timer falls due, or undefined when none is pending. */
  msUntilNext(): number | undefined {
    const next = this.nextDue();
    return next === undefined ? undefined : next.dueMs - this.monotonicMs();
  }

  private nextDue(): PendingTask | undefined {
    let best: PendingTask | undefined;
    for (const entry of this.pending) {
      if (best === undefined || entry.dueMs < best.dueMs || (entry.dueMs === best.dueMs && entry.order < best.order)) {
        best = entry;
      }
    }
    return best;
  }
}
