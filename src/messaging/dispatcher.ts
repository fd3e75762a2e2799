import type { EntityManager } from '@mikro-orm/postgresql';
import type { Logger } from '../../lib/logger.js';
import { every, type Timer } from '../../lib/timers.js';
import type { EventLog, NewEvent } from '../events/event-log.js';
import type { Resources } from '../platform/resources.js';
import type { DispatchCandidate, DispatchDecision, DispatchGate } from './dispatch-gate.js';
import type { DispatchChannel, OutboundDispatch } from './dispatch-channel.js';
import type { DispatchWakeups, MessageJson } from './message.service.js';
import { query, records, rowToMessage, type MessageRow } from './message.sql.js';
import type { MessagingConfig } from './messaging.config.js';

/** Messages claimed per round (and at most this many per DispatchMessages frame, the protocol's limit). */
export const DISPATCH_BATCH = 1000;

/** Wakes the dispatcher of the replica holding a worker's stream (published by SendText on any replica). */
export const wakeChannel = (workerId: string) => `messaging:dispatch:${workerId}`;
/** Workers over their limit of unconfirmed messages, announced to every replica (SendText refuses for them). */
const SATURATION_CHANNEL = 'messaging:saturated';

/**
 * The queued messages a worker can take now: of its WORKING sessions, not
 * held, and not in flight under the session's current epoch (unless the
 * confirmation is overdue), oldest first. A message waits behind an earlier
 * held message to the same chat, so the order per chat is kept. Claimed
 * rows are skipped by a concurrent round (another replica after a stream
 * moved, or a sweep).
 */
const CLAIM = `select m."id", m."session_id", m."tenant_id", m."chat", m."text", m."created_at",
       m."dispatched_at", m."dispatch_attempts", s."epoch"
  from "message" m join "session" s on s."id" = m."session_id"
 where s."worker_id" = ? and s."status" = 'WORKING' and m."status" = 'QUEUED'
   and (m."held_until" is null or m."held_until" <= ?)
   and (m."dispatched_at" is null or m."dispatch_epoch" is distinct from s."epoch" or m."dispatched_at" <= ?)
   and not exists (select 1 from "message" h
                    where h."session_id" = m."session_id" and h."chat" = m."chat" and h."status" = 'QUEUED'
                      and h."held_until" > ? and h."seq" < m."seq")
 order by m."seq"
 limit ?
 for update of m skip locked`;

interface Claimed {
  id: string;
  session_id: string;
  tenant_id: string;
  chat: string;
  text: string;
  created_at: Date | string;
  dispatched_at: Date | string | null;
  dispatch_attempts: number;
  epoch: number;
}

/** What the dispatcher works with. */
export interface DispatcherDependencies {
  gate: DispatchGate;
  channel: DispatchChannel;
  events: EventLog;
  toJson: MessageJson;
}

/** A local worker's dispatch state: one round at a time, coalescing wake-ups; its unconfirmed count. */
interface WorkerState {
  running: Promise<void> | undefined;
  again: boolean;
  inFlight: number;
  heldTimer: { at: number; timer: Timer } | undefined;
  /** The subscription to the worker's wake-up channel (taken once, however many calls race for it). */
  subscription: Promise<() => Promise<void>> | undefined;
}

/**
 * Hands queued messages to the workers whose streams this replica holds
 * (docs/messaging.md, "Dispatch"). Woken by a SendText commit (locally, or
 * through the coordination store from another replica), a session becoming
 * WORKING, a worker stream connecting, and a periodic sweep that also
 * catches held messages whose time came and overdue confirmations.
 */
export class Dispatcher implements DispatchWakeups {
  private readonly workers = new Map<string, WorkerState>();
  /** Workers of other replicas announced saturated, until (wall ms). */
  private readonly saturatedElsewhere = new Map<string, number>();
  private sweepTimer: Timer | undefined;
  private unsubscribeSaturation: (() => Promise<void>) | undefined;
  private readonly log: Logger;

  constructor(
    private readonly resources: Resources,
    private readonly config: MessagingConfig,
    private readonly deps: DispatcherDependencies,
  ) {
    this.log = resources.logger.child({ component: 'dispatcher' });
  }

  async start(): Promise<void> {
    this.unsubscribeSaturation = await this.resources.store.subscribe(SATURATION_CHANNEL, (raw) =>
      this.onSaturation(raw),
    );
    this.sweepTimer = every(this.resources.scheduler, this.config.sweepIntervalMs, () => void this.sweep());
  }

  async stop(): Promise<void> {
    this.sweepTimer?.cancel();
    await this.unsubscribeSaturation?.();
    for (const [workerId, state] of this.workers) {
      state.heldTimer?.timer.cancel();
      await (
        await state.subscription?.catch(() => undefined)
      )?.();
      await state.running;
      this.workers.delete(workerId);
    }
  }

  /** Queued messages may be waiting for the worker: dispatch here if its stream is here, else tell its replica. */
  wake(workerId: string): void {
    if (this.deps.channel.holds(workerId)) {
      this.run(workerId);
      return;
    }
    this.resources.store.publish(wakeChannel(workerId), '1').catch((error: unknown) => {
      // The owning replica's sweep dispatches it anyway.
      this.log.debug({ err: error, workerId }, 'could not publish a dispatch wake-up');
    });
  }

  saturated(workerId: string): boolean {
    const local = this.workers.get(workerId);
    if (local && this.deps.channel.holds(workerId)) return local.inFlight > this.config.inFlightPerWorker;
    const until = this.saturatedElsewhere.get(workerId);
    return until !== undefined && until > this.resources.clock.now().getTime();
  }

  /** A worker stream went live on this replica: listen for its wake-ups, count what it has in flight, dispatch. */
  workerConnected(workerId: string): void {
    void this.track(workerId).then(() => this.run(workerId));
  }

  /** Messages the worker confirmed (sent or failed): no longer in flight. */
  confirmed(workerId: string, count: number): void {
    const state = this.workers.get(workerId);
    if (state) state.inFlight = Math.max(0, state.inFlight - count);
  }

  /** Runs rounds for the worker until nothing is left to take; a wake-up during a round runs one more. */
  private run(workerId: string): void {
    const state = this.stateOf(workerId);
    if (state.running) {
      state.again = true;
      return;
    }
    state.running = (async () => {
      do {
        state.again = false;
        while ((await this.round(workerId, state)) === DISPATCH_BATCH && this.deps.channel.holds(workerId));
      } while (state.again && this.deps.channel.holds(workerId));
    })()
      .catch((error: unknown) => this.log.error({ err: error, workerId }, 'dispatch round failed'))
      .finally(() => {
        state.running = undefined;
      });
  }

  /** One claim: gate, stamp, commit, then the frames. Returns how many messages it claimed. */
  private async round(workerId: string, state: WorkerState): Promise<number> {
    const now = this.resources.clock.now();
    const overdue = new Date(now.getTime() - this.config.dispatchTimeoutMs);
    const outcome = await this.resources.orm.em.fork().transactional(async (tx) => {
      const claimed = await query<Claimed>(tx, CLAIM, [workerId, now, overdue, now, DISPATCH_BATCH]);
      const tooMany = claimed.filter(
        (m) => m.dispatched_at !== null && m.dispatch_attempts >= this.config.dispatchMaxAttempts,
      );
      const candidates = claimed.filter((m) => !tooMany.includes(m));
      const decisions = await this.decide(candidates, now, tx);
      const released = candidates.filter((m) => decisions.get(m.id)?.release === true);
      const held = [...decisions.values()].filter((d) => !d.release);
      if (held.length > 0) {
        await query(
          tx,
          `update "message" m set "held_until" = r."held_until", "held_reason" = r."reason", "updated_at" = ?
             from jsonb_to_recordset(?::jsonb) as r("id" uuid, "held_until" timestamptz, "reason" text)
            where m."id" = r."id"`,
          [now, records(held.map((d) => ({ id: d.messageId, held_until: d.heldUntil, reason: d.reason })))],
        );
      }
      if (released.length > 0) {
        await query(
          tx,
          `update "message" m set "dispatched_at" = ?, "dispatch_epoch" = r."epoch",
                  "dispatch_attempts" = m."dispatch_attempts" + 1, "held_until" = null, "held_reason" = ''
             from jsonb_to_recordset(?::jsonb) as r("id" uuid, "epoch" int)
            where m."id" = r."id"`,
          [now, records(released.map((m) => ({ id: m.id, epoch: m.epoch })))],
        );
      }
      const announcement = tooMany.length > 0 ? await this.fail(tx, tooMany, now) : undefined;
      return { claimed: claimed.length, released, held, announcement };
    });
    if (outcome.announcement) await this.deps.events.announce(outcome.announcement).catch(() => undefined);
    state.inFlight += outcome.released.filter((m) => m.dispatched_at === null).length;
    this.send(workerId, outcome.released);
    this.wakeWhenHeldEnd(workerId, state, outcome.held);
    return outcome.claimed;
  }

  /** Asks the gate, session by session, keeping each session's messages in order. */
  private async decide(
    candidates: readonly Claimed[],
    now: Date,
    tx: EntityManager,
  ): Promise<Map<string, DispatchDecision>> {
    const bySession = new Map<string, DispatchCandidate[]>();
    for (const m of candidates) {
      const list = bySession.get(m.session_id) ?? [];
      list.push({
        messageId: m.id,
        sessionId: m.session_id,
        tenantId: m.tenant_id,
        chat: m.chat,
        createdAt: m.created_at instanceof Date ? m.created_at : new Date(m.created_at),
      });
      bySession.set(m.session_id, list);
    }
    const decisions = new Map<string, DispatchDecision>();
    for (const [sessionId, list] of bySession) {
      for (const decision of await this.deps.gate.decide(sessionId, list, now, tx))
        decisions.set(decision.messageId, decision);
    }
    return decisions;
  }

  /** Messages dispatched the most times allowed and never confirmed: FAILED, with the reason and an event. */
  private async fail(tx: EntityManager, messages: readonly Claimed[], now: Date) {
    const reason = `the worker did not confirm the message after ${this.config.dispatchMaxAttempts} dispatches`;
    const rows = await query<MessageRow>(
      tx,
      `update "message" set "status" = 'FAILED', "failed_at" = ?, "failure_reason" = ?, "updated_at" = ?
        where "id" in (select "value"::uuid from jsonb_array_elements_text(?::jsonb)) and "status" = 'QUEUED'
        returning *`,
      [now, reason, now, records(messages.map((m) => m.id))],
    );
    const events: NewEvent[] = rows.map((row) => {
      const message = rowToMessage(row);
      return {
        tenantId: message.tenantId,
        type: 'message.status',
        sessionId: message.sessionId,
        occurredAt: now,
        data: this.deps.toJson(message),
      };
    });
    return events.length > 0 ? this.deps.events.append(tx, events, now) : undefined;
  }

  private send(workerId: string, released: readonly Claimed[]): void {
    const messages: OutboundDispatch[] = released.map((m) => ({
      sessionId: m.session_id,
      epoch: m.epoch,
      messageId: m.id,
      to: m.chat,
      text: m.text,
    }));
    for (let i = 0; i < messages.length; i += DISPATCH_BATCH) {
      // A stream that ended meanwhile: the messages go again once overdue, or under the session's next epoch.
      if (!this.deps.channel.send(workerId, messages.slice(i, i + DISPATCH_BATCH))) {
        this.log.debug({ workerId, messages: messages.length }, "the worker's stream ended before its dispatch");
        return;
      }
    }
  }

  /** A round that held messages runs again when the first of them may go (the sweep would, but later). */
  private wakeWhenHeldEnd(workerId: string, state: WorkerState, held: readonly DispatchDecision[]): void {
    let first = Infinity;
    for (const d of held) if (!d.release) first = Math.min(first, d.heldUntil.getTime());
    if (first === Infinity) return;
    if (state.heldTimer && state.heldTimer.at <= first) return;
    state.heldTimer?.timer.cancel();
    const delay = Math.max(0, first - this.resources.clock.now().getTime());
    state.heldTimer = {
      at: first,
      timer: this.resources.scheduler.schedule(delay, () => {
        state.heldTimer = undefined;
        if (this.deps.channel.holds(workerId)) this.run(workerId);
      }),
    };
  }

  private stateOf(workerId: string): WorkerState {
    let state = this.workers.get(workerId);
    if (!state) {
      state = { running: undefined, again: false, inFlight: 0, heldTimer: undefined, subscription: undefined };
      this.workers.set(workerId, state);
    }
    return state;
  }

  /** Listens for the worker's wake-ups and counts its unconfirmed messages from the table. */
  private async track(workerId: string): Promise<void> {
    const state = this.stateOf(workerId);
    try {
      state.subscription ??= this.resources.store
        .subscribe(wakeChannel(workerId), () => {
          if (this.deps.channel.holds(workerId)) this.run(workerId);
        })
        .catch((error: unknown) => {
          state.subscription = undefined; // tried again at the next sweep
          throw error;
        });
      await state.subscription;
      const [row] = await query<{ n: number }>(
        this.resources.orm.em.fork(),
        `select count(*)::int as "n" from "message" m join "session" s on s."id" = m."session_id"
          where s."worker_id" = ? and m."status" = 'QUEUED' and m."dispatched_at" is not null`,
        [workerId],
      );
      state.inFlight = row?.n ?? 0;
    } catch (error) {
      this.log.warn({ err: error, workerId }, 'could not track a worker for dispatch');
    }
  }

  /**
   * Every worker streaming here: recount, dispatch what is due, announce
   * saturation to the other replicas. Workers no longer here are forgotten.
   */
  private async sweep(): Promise<void> {
    const local = new Set(this.deps.channel.localWorkers());
    for (const [workerId, state] of this.workers) {
      if (local.has(workerId)) continue;
      this.workers.delete(workerId);
      state.heldTimer?.timer.cancel();
      await (await state.subscription?.catch(() => undefined))?.().catch(() => undefined);
    }
    const untilMs = this.resources.clock.now().getTime() + 3 * this.config.sweepIntervalMs;
    for (const workerId of local) {
      await this.track(workerId);
      this.run(workerId);
      const saturated = (this.workers.get(workerId)?.inFlight ?? 0) > this.config.inFlightPerWorker;
      if (saturated || this.saturatedElsewhere.has(workerId)) {
        await this.resources.store
          .publish(SATURATION_CHANNEL, JSON.stringify({ workerId, untilMs: saturated ? untilMs : 0 }))
          .catch(() => undefined);
      }
    }
  }

  private onSaturation(raw: string): void {
    try {
      const { workerId, untilMs } = JSON.parse(raw) as { workerId: string; untilMs: number };
      if (untilMs > 0) this.saturatedElsewhere.set(workerId, untilMs);
      else this.saturatedElsewhere.delete(workerId);
    } catch (error) {
      this.log.warn({ err: error }, 'unreadable saturation announcement');
    }
  }
}
