import type { Logger } from '../../lib/logger.js';
import { every, type Scheduler, type Timer } from '../../lib/timers.js';
import { parseLabelSelector } from './label-selector.js';
import type { EngineKind, FleetView, PlacementRequest, TenantSpread } from './placement.types.js';
import { planBatch } from './scheduler.js';

/** A session waiting for a worker, as placement sees it. */
export interface WaitingSession {
  sessionId: string;
  tenantId: string;
  engine: EngineKind;
  /** The tenant's hard constraint, e.g. "region=eu,!spot". */
  labelSelector: string;
  /** Soft preferences, weights in [-100, 100]. */
  affinities: readonly { labelSelector: string; weight: number }[];
}

/** What one placement round decides on, read in one transaction by the store of record. */
export interface PlacementRound {
  waiting: readonly WaitingSession[];
  fleet: FleetView;
  /** Where each waiting session's tenant runs sessions now. */
  spreads: ReadonlyMap<string, TenantSpread>;
}

/** The decision for one waiting session. */
export type PlacementDecision = { placed: true; workerId: string } | { placed: false; explanation: string };

/** A session the store committed to a worker, for the assignment to be sent. */
export interface PlacedSession {
  sessionId: string;
  workerId: string;
  epoch: number;
}

/**
 * Where placement reads and commits (the sessions capability, on
 * PostgreSQL). One round is one transaction: lock up to `limit` waiting
 * sessions (skipping those another replica is placing), read the fleet,
 * let `decide` choose, then take the chosen slots worker by worker in a
 * fixed order, each worker's free slots counted under its row lock, so no
 * worker is ever oversubscribed whichever replicas place at once.
 */
export interface PlacementStore<P extends PlacedSession = PlacedSession> {
  round(limit: number, decide: (round: PlacementRound) => PlacementDecision[]): Promise<P[]>;
}

/** How placement runs, compiled from configuration. */
export interface PlacementOptions {
  /** Every replica looks for sessions it can place this often, besides on every fleet change. */
  intervalMs: number;
  /** Waiting sessions considered per round, oldest first. */
  batchSize: number;
}

/**
 * Decides where waiting sessions run (pure): parses their label selectors
 * and hands them to the scheduler in one batch, so each decision sees the
 * ones before it.
 */
export function decidePlacements(round: PlacementRound): PlacementDecision[] {
  const requests: PlacementRequest[] = round.waiting.map((s) => ({
    sessionId: s.sessionId,
    tenantId: s.tenantId,
    engine: s.engine,
    constraints: parseLabelSelector(s.labelSelector),
    affinities: s.affinities.flatMap((a) =>
      parseLabelSelector(a.labelSelector).map((requirement) => ({ requirement, weight: a.weight })),
    ),
  }));
  return planBatch(round.fleet, requests, round.spreads).results.map((result) =>
    result.placed ? { placed: true, workerId: result.workerId } : { placed: false, explanation: result.message },
  );
}

/**
 * Places waiting sessions: a round whenever asked (a session waits, a slot
 * frees, the fleet changes) and on an interval, one round at a time per
 * replica, another at once while the last one filled its batch.
 */
export class PlacementService<P extends PlacedSession = PlacedSession> {
  private placing = false;
  private placeAgain = false;
  private timer: Timer | undefined;

  constructor(
    private readonly store: PlacementStore<P>,
    /** Tells each chosen worker to start its session (AssignSession). */
    private readonly deliver: (placed: P) => Promise<void>,
    private readonly scheduler: Scheduler,
    private readonly options: PlacementOptions,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.timer = every(this.scheduler, this.options.intervalMs, () => this.request());
  }

  stop(): void {
    this.timer?.cancel();
  }

  /** Asks for a round soon; never waits for it. */
  request(): void {
    void this.placePending();
  }

  /** Runs rounds until nothing more is waiting that fits (one runner at a time). */
  async placePending(): Promise<void> {
    if (this.placing) {
      this.placeAgain = true;
      return;
    }
    this.placing = true;
    try {
      do {
        this.placeAgain = false;
        const placed = await this.store.round(this.options.batchSize, decidePlacements);
        await Promise.all(placed.map((session) => this.deliver(session)));
        if (placed.length === this.options.batchSize) this.placeAgain = true;
      } while (this.placeAgain);
    } catch (error) {
      this.log.error({ err: error }, 'placement round failed; retrying on the next fleet change or interval');
    } finally {
      this.placing = false;
    }
  }
}
