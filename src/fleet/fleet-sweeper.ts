import type { EntityManager } from '@mikro-orm/postgresql';
import type { Resources } from '../platform/resources.js';
import type { Logger } from '../../lib/logger.js';
import { judgeFailures, type FailureGuardPolicy } from './failure-guard.js';
import { leaseKey } from './lease.js';
import { ROLLUP_RETENTION_MS } from './metrics-rollup.js';
import type { ReassignmentHoldService } from './reassignment-hold.service.js';
import { WorkerRepository } from './worker.repository.js';
import type { WorkerEvent } from './worker-event.entity.js';

const LEADERSHIP_KEY = 'fleet:sweeper';
const TERM_SETTING = 'fleet.sweeper_term';
const PRUNE_EVERY_MS = 60_000;

/** Raised inside a fenced transaction when a newer sweeper term exists; the transaction rolls back. */
class DeposedError extends Error {}

/** Timing and policy of the fleet-wide sweeper. */
export interface SweeperOptions {
  replicaId: string;
  leaseTtlMs: number;
  /** How long a sweeper leadership lasts without renewal (renewed every sweep). */
  leadershipTtlMs: number;
  guard: FailureGuardPolicy;
}

/**
 * The fleet-wide duties only one replica should do at a time: failing
 * workers whose stream owner is gone (their lease expired with nobody to
 * notice), failing workers not back within the grace, judging mass
 * failures, pruning metrics history. The role goes to whichever replica
 * holds the leadership lease; each term gets a fencing number from
 * PostgreSQL, and every write of a term checks it in the same transaction,
 * so a deposed leader (paused, partitioned) cannot write after its successor
 * took over. A new leader first waits one full lease: the workers it could
 * judge may have renewed with a replica it has not heard from yet.
 */
export class FleetSweeper {
  private term: number | null = null;
  private storeToken: number | null = null;
  private termStartedMs = 0;
  private lastPruneMs = 0;
  /** Events committed by the current fenced transaction, announced once it commits. */
  private pendingAnnouncements: WorkerEvent[] = [];
  private readonly log: Logger;

  constructor(
    private readonly resources: Resources,
    private readonly options: SweeperOptions,
    private readonly holds: ReassignmentHoldService,
    /** Publishes a committed change to watchers. */
    private readonly announce: (event: WorkerEvent) => Promise<void>,
    /** Workers this replica holds a stream for (it judges those itself). */
    private readonly isLocal: (workerId: string) => boolean,
  ) {
    this.log = resources.logger.child({ component: 'sweeper' });
  }

  get isLeader(): boolean {
    return this.term !== null;
  }

  /** One sweep: renew or take the role, then, as leader, do the fleet-wide duties. */
  async tick(): Promise<void> {
    const { store, clock } = this.resources;
    const token = await store.acquireLeadership(LEADERSHIP_KEY, this.options.replicaId, this.options.leadershipTtlMs);
    if (token === null) {
      if (this.term !== null) this.log.warn({ term: this.term }, 'lost the sweeper role to another replica');
      this.term = null;
      this.storeToken = null;
      return;
    }
    if (token !== this.storeToken) {
      // A new term (first election, or our lease lapsed and we took it again):
      // whatever we knew may be stale.
      this.term = await this.claimTerm();
      this.storeToken = token;
      this.termStartedMs = clock.monotonicMs();
      this.log.info(
        { term: this.term, graceMs: this.options.leaseTtlMs },
        'took the sweeper role; every worker gets one full lease before it can be declared failed',
      );
    }
    if (clock.monotonicMs() - this.termStartedMs < this.options.leaseTtlMs) return;
    await this.fenced((em) => this.sweepFleet(em));
  }

  /** Gives the role up (graceful shutdown) so another replica takes it without waiting for the lease. */
  async resign(): Promise<void> {
    if (this.term === null) return;
    this.term = null;
    await this.resources.store.releaseLeadership(LEADERSHIP_KEY, this.options.replicaId);
  }

  private async sweepFleet(em: EntityManager): Promise<void> {
    const { clock, store } = this.resources;
    const repository = new WorkerRepository(em);
    const events: WorkerEvent[] = [];
    const now = clock.now();
    events.push(...(await repository.failOverdue(now)));
    // A worker registered less than a lease ago cannot have an expired lease.
    const connectedBefore = new Date(now.getTime() - this.options.leaseTtlMs);
    const candidates = (await repository.findOnline(connectedBefore)).filter((w) => !this.isLocal(w.id));
    const holders = candidates.length > 0 ? await store.readLeases(candidates.map((w) => leaseKey(w.id))) : [];
    for (const [i, worker] of candidates.entries()) {
      if (holders[i] !== null || worker.streamId === null) continue;
      const event = await repository.detachStream({
        workerId: worker.id,
        streamId: worker.streamId,
        reason: 'lease expired (its replica is gone or stopped renewing)',
        now,
        status: 'FAILED',
      });
      if (event) events.push(event);
    }
    await this.judgeMassFailure(em, repository);
    if (clock.monotonicMs() - this.lastPruneMs >= PRUNE_EVERY_MS) {
      this.lastPruneMs = clock.monotonicMs();
      await repository.pruneRollups(new Date(now.getTime() - ROLLUP_RETENTION_MS));
    }
    // Announced by the caller after commit (see fenced()).
    this.pendingAnnouncements.push(...events);
  }

  private async judgeMassFailure(em: EntityManager, repository: WorkerRepository): Promise<void> {
    const now = this.resources.clock.now();
    const { guard } = this.options;
    const hold = await this.holds.current(em);
    const windowStart = new Date(now.getTime() - guard.windowMs);
    const failedSince = hold.releasedAt && hold.releasedAt > windowStart ? hold.releasedAt : windowStart;
    const holdSince = hold.since ? new Date(hold.since.getTime() - guard.windowMs) : null;
    const judgement = judgeFailures(hold, await repository.failureReading(failedSince, holdSince), guard, now);
    switch (judgement.action) {
      case 'none':
        return;
      case 'trip':
        await this.holds.store(em, judgement.hold);
        // The alert: operators' log pipelines page on alert=true.
        this.log.error(
          { alert: 'fleet.mass_failure', ...judgement.hold },
          'mass failure: automatic reassignment held until an operator releases it or the workers come back',
        );
        return;
      case 'clear':
        await this.holds.store(em, { ...hold, active: false });
        this.log.warn({ reason: judgement.reason }, 'mass failure cleared: reassignment resumes');
        return;
    }
  }

  /** Runs `work` in a transaction that first checks this term is still the newest. */
  private async fenced(work: (em: EntityManager) => Promise<void>): Promise<void> {
    const term = this.term;
    if (term === null) return;
    this.pendingAnnouncements = [];
    try {
      await this.resources.orm.em.fork().transactional(async (em) => {
        // FOR SHARE: a successor's claim (an UPDATE of this row) waits for
        // this transaction, so no write of ours lands after it.
        const [row] = await em
          .getConnection()
          .execute<{ term: string }[]>(
            `select "value"->>'term' as term from "platform_setting" where "key" = ? for share`,
            [TERM_SETTING],
            'all',
            em.getTransactionContext(),
          );
        if (Number(row?.term) !== term) throw new DeposedError();
        await work(em);
      });
    } catch (error) {
      if (!(error instanceof DeposedError)) throw error;
      this.log.warn({ term }, 'a newer sweeper term exists; stepping down');
      this.term = null;
      this.storeToken = null;
      return;
    }
    for (const event of this.pendingAnnouncements) {
      this.log.warn({ workerId: event.workerId, reason: event.reason }, 'worker failed');
      await this.announce(event);
    }
  }

  /** Starts a new term in PostgreSQL: the fencing number every write of the term is checked against. */
  private async claimTerm(): Promise<number> {
    const [row] = await this.resources.orm.em
      .fork()
      .getConnection()
      .execute<{ term: string }[]>(
        `insert into "platform_setting" ("key", "value", "updated_at", "updated_by_user_id")
         values (?, jsonb_build_object('term', 1, 'holder', ?::text), now(), null)
         on conflict ("key") do update
           set "value" = jsonb_build_object('term', ("platform_setting"."value"->>'term')::bigint + 1, 'holder', ?::text),
               "updated_at" = now()
         returning "value"->>'term' as term`,
        [TERM_SETTING, this.options.replicaId, this.options.replicaId],
      );
    return Number(row?.term);
  }
}
