import type { Clock } from '../../lib/clock.js';
import type { Logger } from '../../lib/logger.js';
import type { CommandSender, WorkerSessionEvent } from '../fleet/fleet.types.js';
import { readPlacementFleet } from '../fleet/fleet-view.js';
import type { MaintenanceService } from '../fleet/maintenance.service.js';
import type { Resources } from '../platform/resources.js';
import type {
  PlacedSession,
  PlacementDecision,
  PlacementRound,
  PlacementStore,
} from '../scheduling/placement.service.js';
import type { TenantSpread } from '../scheduling/placement.types.js';
import { zoneOf } from '../scheduling/scores.js';
import { applySessionEvent } from './session-event.state.js';
import type { SessionEvents } from './session-events.js';
import { applyStanding, standingOf, type StandingChange } from './session-standing.js';
import type { SessionWatch } from './session-watch.js';
import type { Session } from './session.entity.js';
import { SessionRepository } from './session.repository.js';

/** A session placement committed, with the row as committed (watchers are told it). */
export interface CommittedPlacement extends PlacedSession {
  session: Session;
}

/**
 * Placement's store of record (scheduling/placement.service.ts): one round
 * in one PostgreSQL transaction, and the assignment sent to the chosen
 * worker afterwards. The fleet is read through its own view; the counts of
 * what runs where come from the sessions.
 */
export class SessionPlacement implements PlacementStore<CommittedPlacement> {
  private readonly log: Logger;
  private readonly clock: Clock;

  constructor(
    private readonly resources: Resources,
    private readonly deps: {
      maintenance: MaintenanceService;
      commands: CommandSender;
      watch: SessionWatch;
      /** An assignment the worker did not take counts as a failed attempt (worker reports). */
      reportEnded: (workerId: string, event: WorkerSessionEvent) => Promise<void>;
      events: SessionEvents;
    },
  ) {
    this.log = resources.logger.child({ component: 'placement' });
    this.clock = resources.clock;
  }

  async round(limit: number, decide: (round: PlacementRound) => PlacementDecision[]): Promise<CommittedPlacement[]> {
    const now = this.clock.now();
    const changes: StandingChange[] = [];
    const { placed, announcement } = await this.resources.orm.em.fork().transactional(async (tx) => {
      const repository = new SessionRepository(tx);
      const pending = await repository.lockPending(limit, now);
      if (pending.length === 0) return { placed: [], announcement: new Map<string, string>() };
      const maintenance = await this.deps.maintenance.current(tx);
      const workers = await readPlacementFleet(tx);
      const counts = await repository.assignedCounts();
      const decisions = decide({
        waiting: pending.map((s) => ({
          sessionId: s.id,
          tenantId: s.tenantId,
          engine: s.engine,
          labelSelector: s.labelSelector,
          affinities: s.affinities,
        })),
        fleet: {
          maintenance: maintenance.enabled,
          workers: workers.map((w) => ({ ...w, assignedSessions: counts.get(w.id) ?? 0 })),
        },
        spreads: await this.tenantSpreads(repository, pending, workers),
      });
      // Take slots worker by worker in id order (a fixed lock order between replicas).
      const byWorker = new Map<string, Session[]>();
      for (const [i, decision] of decisions.entries()) {
        const session = pending[i] as Session;
        if (decision.placed) byWorker.set(decision.workerId, [...(byWorker.get(decision.workerId) ?? []), session]);
        else
          this.apply(
            session,
            { kind: 'noCapacity', epoch: session.epoch, explanation: decision.explanation },
            now,
            changes,
          );
      }
      const placed: CommittedPlacement[] = [];
      for (const workerId of [...byWorker.keys()].sort()) {
        const free = await repository.freeSlots(workerId);
        for (const session of (byWorker.get(workerId) ?? []).slice(0, Math.max(0, free))) {
          if (this.apply(session, { kind: 'placed', epoch: session.epoch, workerId }, now, changes)) {
            placed.push({ sessionId: session.id, workerId, epoch: session.epoch, session });
          }
        }
      }
      return { placed, announcement: await this.deps.events.append(tx, changes, now) };
    });
    await this.deps.events.announce(announcement);
    return placed;
  }

  /** Tells watchers, then sends AssignSession; an assignment not taken puts the session back in the queue. */
  async deliver(placement: CommittedPlacement): Promise<void> {
    const { session, workerId } = placement;
    await this.deps.watch.announce(session);
    const result = await this.deps.commands.sendCommand(workerId, {
      kind: 'assignSession',
      sessionId: session.id,
      epoch: session.epoch,
      engine: session.engine,
    });
    if (result.delivered) {
      this.log.info({ sessionId: session.id, workerId, epoch: session.epoch }, 'session assigned');
      return;
    }
    this.log.warn({ sessionId: session.id, workerId, detail: result.detail }, 'assignment not accepted; placing again');
    // Unanswered is not refused: the worker may run it anyway. Tell it to stop (best effort; the
    // epoch moves on below, so whatever it reports for this attempt is refused as stale).
    void this.deps.commands
      .sendCommand(workerId, {
        kind: 'stopSession',
        sessionId: session.id,
        epoch: session.epoch,
        reason: 'the assignment was not acknowledged in time',
      })
      .catch(() => undefined);
    await this.deps.reportEnded(workerId, {
      sessionId: session.id,
      epoch: session.epoch,
      occurredAt: this.clock.now(),
      event: { kind: 'ended', reason: 'CONNECTION_LOST', detail: `assignment refused: ${result.detail}` },
    });
  }

  /** Applies the scheduler's answer through the lifecycle rules; false if the session moved on meanwhile. */
  private apply(
    session: Session,
    event:
      { kind: 'placed'; epoch: number; workerId: string } | { kind: 'noCapacity'; epoch: number; explanation: string },
    now: Date,
    changes: StandingChange[],
  ): boolean {
    const outcome = applySessionEvent(standingOf(session, false), event, { now, jitter: this.resources.random() });
    if (outcome.outcome === 'stale') return false;
    // A queued session's reason is often the same as last round: do not rewrite the row for nothing.
    if (event.kind === 'noCapacity' && outcome.next.reason === session.statusReason) return true;
    changes.push(applyStanding(session, outcome.next, now));
    return true;
  }

  private async tenantSpreads(
    repository: SessionRepository,
    pending: Session[],
    workers: { id: string; labels: Readonly<Record<string, string>> }[],
  ): Promise<Map<string, TenantSpread>> {
    const zones = new Map(workers.map((w) => [w.id, zoneOf(w.labels)]));
    const spreads = new Map<string, { byWorker: Map<string, number>; byZone: Map<string, number> }>();
    for (const row of await repository.tenantSpread([...new Set(pending.map((s) => s.tenantId))])) {
      let spread = spreads.get(row.tenant_id);
      if (!spread) {
        spread = { byWorker: new Map(), byZone: new Map() };
        spreads.set(row.tenant_id, spread);
      }
      const n = Number(row.n);
      spread.byWorker.set(row.worker_id, n);
      const zone = zones.get(row.worker_id);
      if (zone !== undefined) spread.byZone.set(zone, (spread.byZone.get(zone) ?? 0) + n);
    }
    return spreads;
  }
}
