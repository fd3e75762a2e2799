import { randomUUID } from 'node:crypto';
import { LockMode, UniqueConstraintViolationException } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import { DomainError } from '../platform/errors.js';
import type { AgentHello, WorkerQuery } from './fleet.types.js';
import { Worker, type WorkerMetrics } from './worker.entity.js';

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
  }): Promise<Worker> {
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
            } as Worker);
          }
          if (admission === 'enrolled') worker.credentialGeneration += 1;
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
          return worker;
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
  }): Promise<boolean> {
    const changes: Partial<Worker> = {
      status: 'OFFLINE',
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
    const affected = await this.em.nativeUpdate(Worker, { id: input.workerId, streamId: input.streamId }, changes);
    return affected > 0;
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

  /** Workers the database believes online: the sweeper checks their leases. */
  async findOnline(): Promise<Pick<Worker, 'id' | 'streamId'>[]> {
    return this.em.find(Worker, { status: 'ONLINE' }, { fields: ['id', 'streamId'], disableIdentityMap: true });
  }

  async findById(id: string): Promise<Worker | null> {
    return this.em.findOne(Worker, { id });
  }

  async list(query: WorkerQuery): Promise<Worker[]> {
    return this.em.find(
      Worker,
      {
        ...(query.status ? { status: query.status } : {}),
        ...(query.afterName ? { name: { $gt: query.afterName } } : {}),
      },
      { orderBy: { name: 'asc' }, limit: query.pageSize },
    );
  }
}
