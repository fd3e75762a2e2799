import { DomainError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { CommandSender, HeldSession, WorkerSessionEvent } from '../fleet/fleet.types.js';
import type { ReassignmentHoldService } from '../fleet/reassignment-hold.service.js';
import { CLEAN_CLOSE_REASON } from '../fleet/worker-connection.js';
import type { WorkerEvent } from '../fleet/worker-event.entity.js';
import type { EventAnnouncement } from '../events/event-log.js';
import type { Resources } from '../platform/resources.js';
import type { AuthStates } from './auth-states.js';
import { MessageReportBatches, type MessageReports } from './message-report-batches.js';
import { SESSION_GONE, type RefusedSessionEvents } from './refused-session-events.js';
import type { SessionEffects } from './session-effects.js';
import type { SessionEvents } from './session-events.js';
import { applySessionEvent } from './session-event.state.js';
import { applyStanding, standingOf } from './session-standing.js';
import type { SessionWatch } from './session-watch.js';
import type { Session } from './session.entity.js';
import { SessionRepository } from './session.repository.js';
import {
  fenceAttempt,
  type SessionEffect,
  type SessionEndReason,
  type SessionEvent,
  type ShownQr,
} from './session.state.js';

const END_REASONS: readonly SessionEndReason[] = [
  'STOPPED',
  'QR_TIMEOUT',
  'LOGGED_OUT',
  'CONNECTION_REPLACED',
  'CONNECTION_LOST',
];

/** Placement, as the reports need it: ask for a round, or run one and wait. */
export interface PlacementTrigger {
  request(): void;
  placePending(): Promise<void>;
}

/** What WorkerReports works with. */
export interface WorkerReportsDependencies {
  watch: SessionWatch;
  effects: SessionEffects;
  authStates: AuthStates;
  messages: MessageReports;
  refused: RefusedSessionEvents;
  commands: CommandSender;
  holds: ReassignmentHoldService;
  placement: PlacementTrigger;
  /** session.status and session.qr into the tenant's event log, in the change's transaction. */
  events: SessionEvents;
}

/**
 * What workers and the fleet tell the sessions capability: session events
 * (fenced by the assignment epoch: events of an earlier attempt, or from a
 * worker that does not run the session, are refused, counted and the
 * worker told to stop it; an end of an attempt already over is only noted),
 * what a reconnecting worker still runs, and workers lost, drained or back.
 */
export class WorkerReports {
  private readonly log: Logger;
  private readonly messageBatches: MessageReportBatches;

  constructor(
    private readonly resources: Resources,
    private readonly deps: WorkerReportsDependencies,
  ) {
    this.log = resources.logger.child({ component: 'sessions' });
    this.messageBatches = new MessageReportBatches(resources, deps.messages, deps.refused);
  }

  /** Session events refused because they carried a stale epoch or came from the wrong worker. */
  get staleEvents(): number {
    return this.deps.refused.staleEvents;
  }

  /** A session event from the worker holding `workerId`'s stream on this replica. */
  async onWorkerEvent(workerId: string, report: WorkerSessionEvent): Promise<void> {
    const { event } = report;
    if (
      event.kind === 'messageStatus' ||
      event.kind === 'inbound' ||
      event.kind === 'messageSent' ||
      event.kind === 'messageFailed'
    ) {
      return this.messageBatches.apply(workerId, [report]);
    }
    const now = this.resources.clock.now();
    let outcome:
      | { refused: string; sessionEpoch?: number }
      | { changed: Session; effects: SessionEffect[]; qr?: ShownQr; announcement: EventAnnouncement }
      | undefined;
    try {
      outcome = await this.resources.orm.em.fork().transactional(async (tx) => {
        const session = await new SessionRepository(tx).lock(report.sessionId);
        if (!session) return { refused: SESSION_GONE };
        const stamp = { epoch: report.epoch, workerId };
        if (event.kind === 'authCheckpoint') {
          const fence = fenceAttempt(standingOf(session, false), stamp);
          if (!fence.current) return { refused: fence.reason, sessionEpoch: session.epoch };
          await this.deps.authStates.write(tx, session.id, event.state, now);
          return undefined;
        }
        const lifecycle: SessionEvent =
          event.kind === 'qr'
            ? {
                kind: 'engineQr',
                ...stamp,
                qr: { payload: event.payload, expiresAt: event.expiresAt, sequence: event.sequence },
              }
            : event.kind === 'connected'
              ? {
                  kind: 'engineConnected',
                  ...stamp,
                  account: { jid: event.jid, phoneNumber: event.phoneNumber, pushName: event.pushName },
                }
              : {
                  kind: 'engineEnded',
                  ...stamp,
                  reason: END_REASONS.find((r) => r === event.reason) ?? 'CONNECTION_LOST',
                  detail: event.detail,
                };
        const applied = applySessionEvent(standingOf(session, false), lifecycle, {
          now,
          jitter: this.resources.random(),
        });
        if (applied.outcome === 'stale') return { refused: applied.reason, sessionEpoch: session.epoch };
        const announcement = await this.deps.events.append(tx, [applyStanding(session, applied.next, now)], now);
        for (const effect of applied.effects) {
          if (effect.kind === 'wipeAuthState') await new SessionRepository(tx).wipeAuthState(session.id);
        }
        return {
          changed: session,
          effects: applied.effects,
          qr: lifecycle.kind === 'engineQr' ? lifecycle.qr : undefined,
          announcement,
        };
      });
    } catch (error) {
      if (error instanceof DomainError) {
        // ABORTED (epoch ahead) or FAILED_PRECONDITION (an event the state does not expect): a broken worker.
        this.deps.refused.unexpected(workerId, report, error);
        return;
      }
      throw error;
    }
    if (outcome === undefined) return;
    if ('refused' in outcome) {
      this.deps.refused.stale(workerId, report, outcome.refused, outcome.sessionEpoch);
      return;
    }
    await this.deps.effects.carryOut(report.sessionId, outcome.effects);
    await this.deps.watch.announce(outcome.changed, { qr: outcome.qr });
    await this.deps.events.announce(outcome.announcement);
    if (outcome.changed.status === 'WORKING') this.deps.messages.sessionWorking(workerId);
    // An end frees the worker's slot.
    if (event.kind === 'ended') this.deps.placement.request();
  }

  /**
   * Message facts (sends, failures, receipts, inbound) from one worker
   * stream, consecutive in what it reported: applied as one batch.
   */
  onMessageEvents(workerId: string, reports: readonly WorkerSessionEvent[]): Promise<void> {
    return this.messageBatches.apply(workerId, reports);
  }

  /**
   * A worker (re)connected and said what it runs. What it holds under the
   * current epoch stays (a reconnect never stops valid work); what the
   * database gives it but it no longer holds (it restarted, or fenced itself)
   * is placed again; what it holds without the right to (an older epoch,
   * or a session moved elsewhere) it is told to stop.
   */
  async reconcile(workerId: string, held: readonly HeldSession[], helloAt: Date): Promise<void> {
    try {
      const em = this.resources.orm.em.fork();
      const assigned = await new SessionRepository(em).assignedTo(workerId);
      const heldEpochs = new Map(held.map((h) => [h.sessionId, h.epoch]));
      for (const session of assigned) {
        if (heldEpochs.get(session.id) === session.epoch) continue;
        // Placed here (or reported by the worker) after its Hello: the Hello could not list it.
        if (session.updatedAt > helloAt) continue;
        // The epoch the worker should have held: a newer assignment meanwhile makes this stale.
        const { epoch } = session;
        if (await this.applySystemEvent(session.id, () => ({ kind: 'released', epoch, workerId }))) {
          this.log.info({ sessionId: session.id, workerId }, 'worker no longer runs the session; placing it again');
        }
      }
      const rightful = new Map(assigned.map((s) => [s.id, s.epoch]));
      for (const { sessionId, epoch } of held) {
        if (rightful.get(sessionId) === epoch) continue;
        this.deps.refused.unowned(workerId, sessionId, epoch);
        await this.deps.commands.sendCommand(workerId, {
          kind: 'stopSession',
          sessionId,
          epoch,
          reason: 'this worker no longer owns the session',
        });
      }
      await this.deps.placement.placePending();
    } catch (error) {
      this.log.error({ err: error, workerId }, 'could not reconcile the sessions a worker reported');
    }
  }

  /** The fleet changed (on this replica): place waiting sessions, or move those of a lost worker. */
  async onWorkerChange(event: WorkerEvent): Promise<void> {
    try {
      switch (event.kind) {
        case 'ONLINE':
          // Placement follows the reconciliation of what the worker holds (reconcile()).
          return;
        case 'UNCORDONED':
          await this.deps.placement.placePending();
          return;
        case 'FAILED':
        case 'REMOVED':
          await this.workerLost(event.workerId, event.kind);
          return;
        case 'OFFLINE':
          // A clean goodbye means the agent stopped its sessions; a lost
          // connection waits for FAILED (the worker may come back within the grace).
          if (event.reason === CLEAN_CLOSE_REASON) await this.workerLost(event.workerId, 'OFFLINE');
          return;
        case 'DRAINING':
          await this.workerDraining(event.workerId);
          return;
        case 'CORDONED':
          return;
      }
    } catch (error) {
      this.log.error({ err: error, workerId: event.workerId, event: event.kind }, 'could not react to a fleet change');
    }
  }

  /**
   * Applies a fleet or reconciliation event to one session under its row
   * lock (the event is built from the epoch read under the lock), then
   * tells watchers and carries out the effects. Returns whether it applied.
   */
  private async applySystemEvent(sessionId: string, eventFor: (epoch: number) => SessionEvent): Promise<boolean> {
    const now = this.resources.clock.now();
    const planned = await this.resources.orm.em.fork().transactional(async (tx) => {
      const session = await new SessionRepository(tx).lock(sessionId);
      if (!session) return undefined;
      const applied = applySessionEvent(standingOf(session, false), eventFor(session.epoch), {
        now,
        jitter: this.resources.random(),
      });
      if (applied.outcome === 'stale') return undefined;
      const announcement = await this.deps.events.append(tx, [applyStanding(session, applied.next, now)], now);
      return { session, effects: applied.effects, announcement };
    });
    if (!planned) return false;
    await this.deps.watch.announce(planned.session);
    await this.deps.events.announce(planned.announcement);
    await this.deps.effects.carryOut(planned.session.id, planned.effects);
    return true;
  }

  /**
   * The worker is draining (an operator, or its own SIGTERM): each of its
   * sessions is stopped there first and placed elsewhere once the worker
   * reports it stopped, so an account never runs on two workers at once.
   */
  private async workerDraining(workerId: string): Promise<void> {
    const sessions = await new SessionRepository(this.resources.orm.em.fork()).assignedTo(workerId);
    for (const { id } of sessions) {
      await this.applySystemEvent(id, (epoch) => ({ kind: 'workerLost', epoch, workerId, cause: 'DRAINED' }));
    }
    if (sessions.length > 0)
      this.log.info({ workerId, sessions: sessions.length }, 'moving sessions off a draining worker');
  }

  /**
   * The worker's sessions are placed again elsewhere (resuming from their
   * auth state, no new scan), unless the mass-failure guard holds reassignment.
   */
  private async workerLost(workerId: string, why: string): Promise<void> {
    const em = this.resources.orm.em.fork();
    const hold = await this.deps.holds.current(em);
    if (hold.active) {
      this.log.warn({ workerId, hold: hold.reason }, 'worker lost; its sessions stay until the reassignment hold ends');
      return;
    }
    const sessions = await new SessionRepository(em).assignedTo(workerId);
    for (const { id } of sessions) {
      await this.applySystemEvent(id, (epoch) => ({ kind: 'workerLost', epoch, workerId, cause: 'FAILED' }));
    }
    if (sessions.length > 0) {
      this.log.info({ workerId, why, sessions: sessions.length }, 'placing the sessions of a lost worker again');
      await this.deps.placement.placePending();
    }
  }
}
