import { randomUUID } from 'node:crypto';
import { LockMode, UniqueConstraintViolationException } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import { DomainError } from '../../lib/errors.js';
import type { AgentHello, WorkerQuery } from './fleet.types.js';
import { Worker, type WorkerMetrics } from './worker.entity.js';
import { WorkerEvent, type WorkerEventKind } from './worker-event.entity.js';
import { planAdminAction, type AdminAction } from './worker.state.js';
import type { MetricsRollup } from './metrics-rollup.js';
import { WorkerMetricsRollup } from './worker-metrics-rollup.entity.js';
import type { FailureReading } from './failure-guard.js';

/** A buffered heartbeat waiting to be written. */
export interface HeartbeatRecord {
  workerId: string;
  streamId: string;
  at: Date;
  metrics: WorkerMetrics;
}

/** Persistence of workers. Every liveness write is guarded by the stream id it belongs to. */
export class WorkerRepository {
  constructor(private readonly em: EntityManager) {}

  /**
   * Records a new stream for the worker named in `hello`, creating the worker
   * on first contact. `canTakeOver` decides whether a worker that still looks
   * online (another stream) may be taken over by this one.
   */
  async attachStream(input: {
    hello: AgentHello;
    streamId: string;
    replicaId: string;
    now: Date;
    canTakeOver: (current: Worker) => Promise<boolean>;
    /**
     * Checks the agent's credential against the locked row (or its absence),
     * inside the transaction, before anything is written. Returns 'enrolled'
     * when a join token was used: the worker's earlier credentials stop working.
     */
    authorize: (em: EntityManager, current: Worker | null) => Promise<'enrolled' | 'verified'>;
  }): Promise<{ worker: Worker; event: WorkerEvent }> {
    const { hello, now } = input;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.em.transactional(async (em) => {
          let worker = await em.findOne(Worker, { name: hello.workerName }, { lockMode: LockMode.PESSIMISTIC_WRITE });
          const admission = await input.authorize(em, worker);
          if (worker && hello.workerId !== '' && hello.workerId !== worker.id) {
            throw new DomainError(
              'FAILED_PRECONDITION',
              `worker id ${hello.workerId} does not belong to worker name "${hello.workerName}"`,
            );
          }
          if (worker?.status === 'ONLINE' && worker.streamId && !(await input.canTakeOver(worker))) {
            throw new DomainError(
              'ALREADY_EXISTS',
              `worker name "${hello.workerName}" is in use by another live agent; choose another name or stop that agent`,
            );
          }
          if (!worker) {
            worker = em.create(Worker, {
              id: randomUUID(),
              name: hello.workerName,
              firstSeenAt: now,
              metrics: null,
              lastHeartbeatAt: null,
              credentialGeneration: 0,
              schedulability: 'ACTIVE',
              schedulabilityReason: '',
              failAfter: null,
            } as Worker);
          }
          if (admission === 'enrolled') worker.credentialGeneration += 1;
          if (worker.status === 'REMOVED') {
            // Enrolled again after removal: back in the fleet, open for work.
            worker.schedulability = 'ACTIVE';
            worker.schedulabilityReason = '';
          }
          worker.failAfter = null;
          const event = this.recordEvent(em, worker.id, 'ONLINE', 'connected', null, now);
          em.assign(worker, {
            status: 'ONLINE',
            statusReason: 'connected',
            agentVersion: hello.agentVersion,
            capacity: hello.capacity,
            supportedEngines: hello.supportedEngines,
            labels: hello.labels,
            instanceId: hello.instanceId,
            streamId: input.streamId,
            replicaId: input.replicaId,
            connectedSince: now,
            disconnectedAt: null,
            updatedAt: now,
          });
          return { worker, event };
        });
      } catch (error) {
        // Two first contacts with one new name raced on the unique index: the
        // loser retries and now finds the row (and the ALREADY_EXISTS rule).
        if (error instanceof UniqueConstraintViolationException && attempt === 0) continue;
        throw error;
      }
    }
  }

  /** Marks the worker offline if `streamId` is still its current stream. Returns whether it did. */
  async detachStream(input: {
    workerId: string;
    streamId: string;
    reason: string;
    now: Date;
    lastHeartbeat?: HeartbeatRecord;
    /** FAILED for an expired lease; OFFLINE otherwise, with a deadline when the connection was lost. */
    status?: 'OFFLINE' | 'FAILED';
    failAfter?: Date | null;
  }): Promise<WorkerEvent | undefined> {
    const status = input.status ?? 'OFFLINE';
    const changes: Partial<Worker> = {
      status,
      failAfter: input.failAfter ?? null,
      statusReason: input.reason,
      streamId: null,
      replicaId: null,
      connectedSince: null,
      disconnectedAt: input.now,
      updatedAt: input.now,
    };
    if (input.lastHeartbeat) {
      changes.lastHeartbeatAt = input.lastHeartbeat.at;
      changes.metrics = input.lastHeartbeat.metrics;
    }
    return this.em.transactional(async (em) => {
      const affected = await em.nativeUpdate(Worker, { id: input.workerId, streamId: input.streamId }, changes);
      if (affected === 0) return undefined;
      return this.recordEvent(em, input.workerId, status, input.reason, null, input.now);
    });
  }

  /** Workers whose connection was lost and who did not come back within the grace: FAILED now. */
  async failOverdue(now: Date, workerId?: string): Promise<WorkerEvent[]> {
    return this.em.transactional(async (em) => {
      const overdue = await em.find(
        Worker,
        { status: 'OFFLINE', failAfter: { $lte: now }, ...(workerId ? { id: workerId } : {}) },
        { lockMode: LockMode.PESSIMISTIC_PARTIAL_WRITE },
      );
      return overdue.map((worker) => {
        worker.status = 'FAILED';
        worker.failAfter = null;
        worker.statusReason = 'connection lost and not back within the failure grace';
        worker.updatedAt = now;
        return this.recordEvent(em, worker.id, 'FAILED', worker.statusReason, null, now);
      });
    });
  }

  /** Applies an operator's action under a row lock, with its event. */
  async applyAdminAction(input: {
    workerId: string;
    action: AdminAction;
    reason: string;
    actorUserId: string | null;
    now: Date;
  }): Promise<{ worker: Worker; event: WorkerEvent | undefined }> {
    return this.em.transactional(async (em) => {
      const worker = await em.findOne(Worker, { id: input.workerId }, { lockMode: LockMode.PESSIMISTIC_WRITE });
      if (!worker) throw DomainError.notFound('worker', input.workerId);
      const plan = planAdminAction(
        {
          status: worker.status,
          schedulability: worker.schedulability,
          sessionCount: await this.assignedSessionCount(worker.id, em),
        },
        input.action,
      );
      if (!plan.event) return { worker, event: undefined };
      const reason = input.reason || `${input.action} by an operator`;
      worker.status = plan.status;
      worker.schedulability = plan.schedulability;
      worker.updatedAt = input.now;
      if (plan.event === 'REMOVED') {
        // Its credentials stop working; only a new join token brings it back.
        worker.credentialGeneration += 1;
        worker.statusReason = reason;
        worker.streamId = null;
        worker.replicaId = null;
        worker.connectedSince = null;
        worker.failAfter = null;
      } else {
        worker.schedulabilityReason = plan.event === 'UNCORDONED' ? '' : reason;
      }
      return { worker, event: this.recordEvent(em, worker.id, plan.event, reason, input.actorUserId, input.now) };
    });
  }

  async listEvents(workerId: string, page: { pageSize: number; before?: { occurredAt: Date; id: string } }) {
    return this.em.find(
      WorkerEvent,
      {
        workerId,
        ...(page.before
          ? {
              $or: [
                { occurredAt: { $lt: page.before.occurredAt } },
                { occurredAt: page.before.occurredAt, id: { $lt: page.before.id } },
              ],
            }
          : {}),
      },
      { orderBy: { occurredAt: 'desc', id: 'desc' }, limit: page.pageSize },
    );
  }

  async findAll(): Promise<Worker[]> {
    return this.em.find(Worker, {}, { orderBy: { name: 'asc' } });
  }

  private recordEvent(
    em: EntityManager,
    workerId: string,
    kind: WorkerEventKind,
    reason: string,
    actorUserId: string | null,
    now: Date,
  ): WorkerEvent {
    return em.create(WorkerEvent, { id: randomUUID(), workerId, kind, reason, actorUserId, occurredAt: now });
  }

  /** Writes many heartbeats in one statement; rows whose stream has changed are skipped. */
  async recordHeartbeats(records: readonly HeartbeatRecord[]): Promise<void> {
    if (records.length === 0) return;
    const rows = records.map(() => '(?, ?, ?, ?)').join(', ');
    const params = records.flatMap((r) => [r.workerId, r.streamId, r.at.toISOString(), JSON.stringify(r.metrics)]);
    await this.em.getConnection().execute(
      `update "worker" as w
          set "last_heartbeat_at" = v.at::timestamptz, "metrics" = v.metrics::jsonb
         from (values ${rows}) as v(id, stream_id, at, metrics)
        where w."id" = v.id::uuid and w."stream_id" = v.stream_id`,
      params,
    );
  }

  /**
   * Workers the database believes online whose stream opened before
   * `connectedBefore`: the sweeper checks their leases. Younger ones are
   * skipped: their lease may not be written yet (it follows the commit).
   */
  async findOnline(connectedBefore: Date): Promise<Pick<Worker, 'id' | 'streamId'>[]> {
    return this.em.find(
      Worker,
      { status: 'ONLINE', connectedSince: { $lt: connectedBefore } },
      { fields: ['id', 'streamId'], disableIdentityMap: true },
    );
  }

  /** Adds rollups to the stored minutes, merging with what other flushes (or replicas) stored. */
  async recordRollups(rollups: readonly MetricsRollup[]): Promise<void> {
    if (rollups.length === 0) return;
    const rows = rollups.map(
      () => '(?::uuid, ?::timestamptz, ?::int, ?::float8, ?::float8, ?::float8, ?::float8, ?::float8, ?::int)',
    );
    const params = rollups.flatMap((r) => [
      r.workerId,
      r.minute.toISOString(),
      r.samples,
      r.cpuPercentAvg,
      r.cpuPercentMax,
      r.rssBytesMax,
      r.memoryPercentAvg,
      r.eventLoopLagMsMax,
      r.sessionCountMax,
    ]);
    // Averages merge weighted by sample count, the same as mergeRollups().
    // Workers removed meanwhile are skipped rather than failing the batch.
    await this.em.getConnection().execute(
      `insert into "worker_metrics_rollup" as t
         ("worker_id", "minute", "samples", "cpu_percent_avg", "cpu_percent_max", "rss_bytes_max",
          "memory_percent_avg", "event_loop_lag_ms_max", "session_count_max")
       select v.* from (values ${rows.join(', ')}) as v(worker_id, minute, samples, cpu_avg, cpu_max, rss_max, mem_avg, lag_max, sessions_max)
        where exists (select 1 from "worker" w where w."id" = v.worker_id)
       on conflict ("worker_id", "minute") do update set
         "samples" = t."samples" + excluded."samples",
         "cpu_percent_avg" = (t."cpu_percent_avg" * t."samples" + excluded."cpu_percent_avg" * excluded."samples") / (t."samples" + excluded."samples"),
         "cpu_percent_max" = greatest(t."cpu_percent_max", excluded."cpu_percent_max"),
         "rss_bytes_max" = greatest(t."rss_bytes_max", excluded."rss_bytes_max"),
         "memory_percent_avg" = (t."memory_percent_avg" * t."samples" + excluded."memory_percent_avg" * excluded."samples") / (t."samples" + excluded."samples"),
         "event_loop_lag_ms_max" = greatest(t."event_loop_lag_ms_max", excluded."event_loop_lag_ms_max"),
         "session_count_max" = greatest(t."session_count_max", excluded."session_count_max")`,
      params,
    );
  }

  /** The worker's rollups from `since` on, oldest first. */
  async metricsHistory(workerId: string, since: Date): Promise<WorkerMetricsRollup[]> {
    return this.em.find(
      WorkerMetricsRollup,
      { workerId, minute: { $gte: since } },
      { orderBy: { minute: 'asc' }, disableIdentityMap: true },
    );
  }

  async pruneRollups(before: Date): Promise<number> {
    return this.em.nativeDelete(WorkerMetricsRollup, { minute: { $lt: before } });
  }

  /** What the mass-failure guard reads: failures since `failedSince`, workers online, and those still failed since `holdSince`. */
  async failureReading(failedSince: Date, holdSince: Date | null): Promise<FailureReading> {
    const [row] = await this.em.getConnection().execute<{ recent: string; online: string; still_failed: string }[]>(
      `select
         (select count(distinct "worker_id") from "worker_event" where "kind" = 'FAILED' and "occurred_at" > ?) as recent,
         (select count(*) from "worker" where "status" = 'ONLINE') as online,
         (select count(*) from "worker" where "status" = 'FAILED' and "updated_at" >= ?) as still_failed`,
      [failedSince.toISOString(), holdSince?.toISOString() ?? 'infinity'],
      'all',
      // Inside the sweeper's transaction: without its context this would take
      // a second pooled connection (and wait forever on PGlite's only one).
      this.em.getTransactionContext(),
    );
    return {
      recentFailures: Number(row?.recent ?? 0),
      online: Number(row?.online ?? 0),
      stillFailedSinceHold: Number(row?.still_failed ?? 0),
    };
  }

  /**
   * Sessions the database assigns to the worker: the truth for "is it
   * drained?" (its last heartbeat may be older than the last move).
   */
  async assignedSessionCount(workerId: string, em: EntityManager = this.em): Promise<number> {
    const [row] = await em
      .getConnection()
      .execute<{ n: string }[]>(
        `select count(*) as n from "session" where "worker_id" = ? and "status" in ('STARTING', 'SCAN_QR', 'WORKING')`,
        [workerId],
        'all',
        em.getTransactionContext(),
      );
    return Number(row?.n ?? 0);
  }

  async findById(id: string): Promise<Worker | null> {
    return this.em.findOne(Worker, { id });
  }

  async list(query: WorkerQuery): Promise<Worker[]> {
    const qb = this.em.createQueryBuilder(Worker, 'w').select('*').orderBy({ name: 'asc' }).limit(query.pageSize);
    if (query.status) qb.andWhere({ status: query.status });
    if (query.afterName) qb.andWhere({ name: { $gt: query.afterName } });
    if (query.agentVersion) qb.andWhere({ agentVersion: query.agentVersion });
    for (const r of query.labels ?? []) {
      switch (r.op) {
        case 'exists':
          qb.andWhere('jsonb_exists(w.labels, ?)', [r.key]);
          break;
        case 'not-exists':
          qb.andWhere('not jsonb_exists(w.labels, ?)', [r.key]);
          break;
        case 'equals':
          qb.andWhere('w.labels ->> ? = ?', [r.key, r.value]);
          break;
        case 'not-equals':
          qb.andWhere('(w.labels ->> ?) is distinct from ?', [r.key, r.value]);
          break;
      }
    }
    return qb.getResult();
  }
}
