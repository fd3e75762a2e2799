import type { Logger } from '../../lib/logger.js';
import { every } from '../../lib/timers.js';
import type { Resources } from '../platform/resources.js';
import { eventChannel } from './event-log.js';
import type { EventFilter, EventReader, StoredEvent } from './event-reader.js';

/** How a followed stream reads the log. */
export interface EventStreamOptions {
  /**
   * A caught-up stream reads the log at least this often even when no
   * announcement came: the safety net for an announcement lost between
   * replicas (announcements are pub/sub, not durable).
   */
  pollIntervalMs: number;
  /** Events read per statement while catching up. */
  pageSize: number;
}

/** Where a stream starts: after a cursor, at the beginning of the log, or with new events only. */
export type StreamStart = { after: bigint } | { fromBeginning: true } | { newOnly: true };

/**
 * Follows a tenant's event log: replays from a position, then delivers
 * new events as they commit. It subscribes to the tenant's announcements
 * before it first reads, so an event committed between the read and the
 * subscription cannot be missed; every announcement (coalesced: a burst
 * while a read runs makes one more read) and every poll tick reads
 * `seq > last considered` in pages. Numbers come without gaps in commit
 * order, so this neither skips nor repeats, and order is exact.
 */
export class EventStream {
  private readonly log: Logger;

  constructor(
    private readonly resources: Resources,
    private readonly reader: EventReader,
    private readonly options: EventStreamOptions,
  ) {
    this.log = resources.logger.child({ component: 'event-stream' });
  }

  async *follow(filter: EventFilter, start: StreamStart, signal: AbortSignal): AsyncGenerator<StoredEvent> {
    const wake = new Wakeup();
    const unsubscribe = await this.resources.store.subscribe(eventChannel(filter.tenantId), () => wake.set());
    const poll = every(this.resources.scheduler, this.options.pollIntervalMs, () => wake.set());
    const onAbort = () => wake.set();
    signal.addEventListener('abort', onAbort, { once: true });
    const em = this.resources.orm.em.fork();
    try {
      // How far the log has been considered: past what the filters left out too.
      let scanned =
        'after' in start ? start.after : 'fromBeginning' in start ? 0n : await this.reader.lastSeq(em, filter.tenantId);
      for (;;) {
        if (signal.aborted) return;
        const page = await this.reader.page(em, filter, scanned, this.options.pageSize);
        for (const event of page.events) {
          if (signal.aborted) return;
          yield event;
          scanned = event.seq;
        }
        if (page.scannedTo !== undefined && page.scannedTo > scanned) scanned = page.scannedTo;
        // A full page: more backlog to read before waiting.
        if (page.events.length === this.options.pageSize) continue;
        await wake.wait();
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      poll.cancel();
      unsubscribe().catch((error: unknown) => this.log.warn({ err: error }, 'could not unsubscribe an event stream'));
    }
  }
}

/** A coalescing wake-up: any number of set() calls before wait() make it return once. */
class Wakeup {
  private pending = false;
  private waiter: (() => void) | undefined;

  set(): void {
    this.pending = true;
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.();
  }

  async wait(): Promise<void> {
    if (!this.pending) await new Promise<void>((resolve) => (this.waiter = resolve));
    this.pending = false;
  }
}
