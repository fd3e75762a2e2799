import type { Logger } from '../lib/logger.js';
import type { Scheduler, Timer } from '../lib/timers.js';
import type { SessionEventInit } from './sessions/session-events.js';

/** An envelope payload carrying session events: one, or a batch. */
export type SessionEventsPayload =
  { case: 'sessionEvent'; value: SessionEventInit } | { case: 'sessionEvents'; value: { events: SessionEventInit[] } };

/** What became of one write: sent, refused by the outbound check (dropped), or no welcomed stream to take it. */
export type WriteResult = 'sent' | 'invalid' | 'no stream';

/** How the uplink is set up; the agent builds one. */
export interface SessionEventUplinkOptions {
  /** Writes one envelope on the welcomed stream, checked against the protocol's rules. */
  write: (payload: SessionEventsPayload) => WriteResult;
  scheduler: Scheduler;
  log: Logger;
  /** How long a message fact may wait for others to share its frame. Default 10 ms. */
  batchDelayMs?: number;
  /** Most events in one batch (SessionEventBatch allows 1000). Default 1000. */
  maxBatch?: number;
  /** Events held while no stream is welcomed; beyond it the oldest are dropped. Default 10 000. */
  outboxLimit?: number;
}

/** Message facts: frequent and small, so they travel in batches. Anything else is a lifecycle event. */
function isMessageFact(event: SessionEventInit): boolean {
  switch (event.event?.case) {
    case 'messageSent':
    case 'messageFailed':
    case 'messageStatus':
    case 'inboundMessage':
      return true;
    case 'qr':
    case 'connected':
    case 'authCheckpoint':
    case 'ended':
    case undefined:
      return false;
    default:
      return event.event satisfies never;
  }
}

/**
 * Session events on their way up. Message facts (sent, failed, receipts,
 * inbound) are coalesced into SessionEventBatch frames, flushed when a
 * batch is full or `batchDelayMs` after its first event: one frame and one
 * transaction on the control plane for many facts. Lifecycle events (qr,
 * connected, checkpoints, ended) go alone, after flushing the facts before
 * them, so the control plane sees every event in the order it happened.
 * While no stream is welcomed (reconnecting) events wait in a bounded
 * outbox and go up after the next Welcome.
 */
export class SessionEventUplink {
  private pending: SessionEventInit[] = [];
  private timer: Timer | undefined;
  private readonly outbox: SessionEventInit[] = [];
  private readonly write: SessionEventUplinkOptions['write'];
  private readonly scheduler: Scheduler;
  private readonly log: Logger;
  private readonly batchDelayMs: number;
  private readonly maxBatch: number;
  private readonly outboxLimit: number;

  constructor(options: SessionEventUplinkOptions) {
    this.write = options.write;
    this.scheduler = options.scheduler;
    this.log = options.log;
    this.batchDelayMs = options.batchDelayMs ?? 10;
    this.maxBatch = options.maxBatch ?? 1_000;
    this.outboxLimit = options.outboxLimit ?? 10_000;
    if (this.maxBatch < 1 || this.maxBatch > 1_000) throw new RangeError('maxBatch must be between 1 and 1000');
  }

  /** Events not yet sent (waiting for a batch or a stream). */
  get backlog(): number {
    return this.pending.length + this.outbox.length;
  }

  push(event: SessionEventInit): void {
    if (isMessageFact(event)) {
      this.pending.push(event);
      if (this.pending.length >= this.maxBatch) this.flush();
      else this.timer ??= this.scheduler.schedule(this.batchDelayMs, () => this.flush());
      return;
    }
    this.flush();
    this.deliver([event]);
  }

  /** Sends the facts waiting for a batch now. */
  flush(): void {
    this.timer?.cancel();
    this.timer = undefined;
    if (this.pending.length === 0) return;
    const events = this.pending;
    this.pending = [];
    this.deliver(events);
  }

  /** A stream was welcomed: what waited goes up on it, in order. */
  welcomed(): void {
    this.flush();
    if (this.outbox.length === 0) return;
    this.log.info({ events: this.outbox.length }, 'sending session events held while reconnecting');
    const held = this.outbox.splice(0);
    const unsent = this.sendAll(held);
    // The stream went away again meanwhile: keep the rest for the next one.
    if (unsent.length > 0) this.outbox.unshift(...unsent);
  }

  /** Forgets everything not yet sent (fenced: the sessions belong to others now; or stopping). */
  clear(): number {
    this.timer?.cancel();
    this.timer = undefined;
    const dropped = this.pending.length + this.outbox.length;
    this.pending = [];
    this.outbox.length = 0;
    return dropped;
  }

  private deliver(events: SessionEventInit[]): void {
    const unsent = this.outbox.length === 0 ? this.sendAll(events) : events;
    for (const event of unsent) this.hold(event);
  }

  /** Sends events in order, facts in batches; returns those left when no stream took them. */
  private sendAll(events: SessionEventInit[]): SessionEventInit[] {
    let index = 0;
    while (index < events.length) {
      const first = events[index] as SessionEventInit;
      let end = index + 1;
      if (isMessageFact(first)) {
        while (end < events.length && end - index < this.maxBatch && isMessageFact(events[end] as SessionEventInit)) {
          end++;
        }
      }
      const group = events.slice(index, end);
      const sent = this.sendGroup(group);
      if (sent < group.length) return events.slice(index + sent);
      index = end;
    }
    return [];
  }

  /** Sends one lifecycle event or a batch of facts; returns how many of them left (all unless the stream went). */
  private sendGroup(group: SessionEventInit[]): number {
    if (group.length > 1) {
      const result = this.write({ case: 'sessionEvents', value: { events: group } });
      if (result === 'sent') return group.length;
      if (result === 'no stream') return 0;
    }
    // Alone, or a batch the check refused: one bad event must not cost the others, so each goes
    // alone (write drops and logs the bad one).
    for (const [position, event] of group.entries()) {
      if (this.write({ case: 'sessionEvent', value: event }) === 'no stream') return position;
    }
    return group.length;
  }

  private hold(event: SessionEventInit): void {
    if (event.event?.case === 'authCheckpoint') {
      // A checkpoint is a full snapshot: a newer one makes a queued one of the same assignment worthless.
      const stale = this.outbox.findIndex(
        (queued) =>
          queued.event?.case === 'authCheckpoint' &&
          queued.sessionId === event.sessionId &&
          queued.epoch === event.epoch,
      );
      if (stale >= 0) this.outbox.splice(stale, 1);
    }
    if (this.outbox.length >= this.outboxLimit) {
      this.outbox.shift();
      this.log.warn({ limit: this.outboxLimit }, 'session event outbox full: oldest event dropped');
    }
    this.outbox.push(event);
  }
}
