import { randomUUID } from 'node:crypto';
import { DomainError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { every, type Timer } from '../../lib/timers.js';
import type { TokenService } from '../identity/token.service.js';
import type { Resources } from '../platform/resources.js';
import type { CommandRouter } from './command-router.js';
import type { FleetChanges } from './fleet-changes.js';
import { FleetSweeper } from './fleet-sweeper.js';
import type { AgentHeartbeat, AgentHello, FleetOptions, HeldSession } from './fleet.types.js';
import type { HeartbeatBuffer } from './heartbeat-buffer.js';
import type { JoinTokenService } from './join-token.service.js';
import { isLeaseExpired, leaseHolder, leaseKey, replicaKey } from './lease.js';
import type { ReassignmentHoldService } from './reassignment-hold.service.js';
import type { WorkerAdmin } from './worker-admin.service.js';
import { WorkerConnection, type DisconnectOutcome, type LocalStreams } from './worker-connection.js';
import type { Worker } from './worker.entity.js';
import { WorkerRepository } from './worker.repository.js';

/** Reason recorded when an agent drains itself (SIGTERM); a restarted agent is schedulable again. */
const AGENT_DRAINING_REASON = 'the agent is draining (stopping)';

/** The parts of the fleet FleetService works with, and the port the sessions capability answers. */
export interface FleetDependencies {
  tokens: TokenService;
  joinTokens: JoinTokenService;
  streams: LocalStreams;
  changes: FleetChanges;
  router: CommandRouter;
  admin: WorkerAdmin;
  heartbeats: HeartbeatBuffer;
  holds: ReassignmentHoldService;
  /** A worker (re)connected to this replica and said what it still runs (the sessions capability reconciles). */
  onHello: (workerId: string, held: readonly HeldSession[], helloAt: Date) => void;
}

/**
 * Agent streams on this replica and the liveness of their workers: accepts
 * Hellos (registration), renews leases on heartbeats, records streams that
 * end, and declares workers FAILED when their lease runs out or their lost
 * connection is not back within the grace. Commands go through the
 * CommandRouter, operators' actions through WorkerAdmin, changes out
 * through FleetChanges.
 */
export class FleetService {
  private readonly log: Logger;
  private sweepTimer: Timer | undefined;
  private flushTimer: Timer | undefined;
  private stopped = false;
  /** Timers that declare a lost worker FAILED when its grace ends (by worker id). */
  private readonly graceTimers = new Map<string, Timer>();
  private readonly sweeper: FleetSweeper;
  private sweeping = false;

  constructor(
    private readonly resources: Resources,
    private readonly options: FleetOptions,
    private readonly deps: FleetDependencies,
  ) {
    this.log = resources.logger.child({ component: 'fleet' });
    this.sweeper = new FleetSweeper(
      resources,
      {
        replicaId: options.replicaId,
        leaseTtlMs: options.leaseTtlMs,
        leadershipTtlMs: options.sweeperLeadershipTtlMs,
        guard: options.guard,
      },
      deps.holds,
      (event) => deps.changes.announce(event),
      (workerId) => deps.streams.has(workerId),
    );
  }

  async start(): Promise<void> {
    await this.deps.changes.start();
    await this.deps.router.start();
    await this.resources.store.forceLease(
      replicaKey(this.options.replicaId),
      this.options.replicaId,
      this.options.leaseTtlMs,
    );
    const { scheduler } = this.resources;
    this.sweepTimer = every(scheduler, this.options.sweepIntervalMs, () => void this.sweep());
    this.flushTimer = every(scheduler, this.options.metricsFlushIntervalMs, () => void this.flushHeartbeats());
  }

  /** Whether this replica holds the fleet-wide sweeper role now (one replica at a time). */
  get isSweepLeader(): boolean {
    return this.sweeper.isLeader;
  }

  /** The control plane's time: what an agent's message left untimed happened when it was received. */
  now(): Date {
    return this.resources.clock.now();
  }

  /** Number of agent streams this replica holds. */
  get connectionCount(): number {
    return this.deps.streams.size;
  }

  /** A new, not yet introduced agent stream. */
  openConnection(peer: string): WorkerConnection {
    if (this.stopped)
      throw new DomainError('UNAVAILABLE', 'control plane is shutting down; reconnect to another replica');
    return new WorkerConnection(randomUUID(), peer);
  }

  /** Accepts the agent's Hello: registers the worker, takes its lease and sends the Welcome. */
  async accept(connection: WorkerConnection, hello: AgentHello, correlationId: string): Promise<void> {
    if (connection.state !== 'open') {
      throw new DomainError('FAILED_PRECONDITION', 'hello was already received on this stream');
    }
    // Its shape (name, capacity, labels, ids) was checked against worker.proto's rules as it arrived.
    const now = this.resources.clock.now();
    const { worker, event: online } = await this.register(connection, hello, now);
    if (connection.isClosed()) {
      // The stream ended while the Hello was being stored: undo, or the
      // worker would look online with nobody behind it.
      await this.repository().detachStream({
        workerId: worker.id,
        streamId: connection.streamId,
        reason: 'stream closed during registration',
        now: this.resources.clock.now(),
      });
      return;
    }
    await this.goLive(connection, worker, hello);
    await this.deps.changes.announce(online);
    if (worker.schedulability === 'DRAINING' && worker.schedulabilityReason === AGENT_DRAINING_REASON) {
      // It drained itself to stop (a rolling restart, say) and is back: not an operator's drain.
      await this.deps.admin.applyAdminAction(this.repository(), {
        workerId: worker.id,
        action: 'uncordon',
        reason: 'the agent restarted after draining itself',
        actorUserId: null,
      });
    }
    // After the Welcome is queued, so commands the reconciliation sends arrive after it.
    queueMicrotask(() => this.deps.onHello(worker.id, hello.heldSessions, now));
    connection.send({
      correlationId,
      kind: 'welcome',
      workerId: worker.id,
      heartbeatIntervalMs: this.options.heartbeatIntervalMs,
      leaseTtlMs: this.options.leaseTtlMs,
      replicaId: this.options.replicaId,
      workerCredential: await this.deps.tokens.issueWorkerCredential({
        workerId: worker.id,
        generation: worker.credentialGeneration,
      }),
    });
  }

  /**
   * Checks the agent's credential (a join token to enrol, then the worker
   * credential) and records the worker and its new stream in one transaction.
   */
  private async register(connection: WorkerConnection, hello: AgentHello, now: Date) {
    const credential = hello.credential;
    if (!credential) {
      throw new DomainError(
        'UNAUTHENTICATED',
        'worker credentials required: a join token on first enrolment, then the worker credential',
      );
    }
    // Verified before any database work, so a forged credential costs nothing.
    const claims =
      credential.kind === 'worker-credential'
        ? await this.deps.tokens.verifyWorkerCredential(credential.token)
        : undefined;
    return this.repository().attachStream({
      hello,
      streamId: connection.streamId,
      replicaId: this.options.replicaId,
      now,
      authorize: async (em, current) => {
        if (credential.kind === 'join-token') {
          await this.deps.joinTokens.redeem(em, credential.token);
          return 'enrolled';
        }
        if (
          !current ||
          !claims ||
          claims.workerId !== current.id ||
          claims.generation !== current.credentialGeneration
        ) {
          throw new DomainError(
            'UNAUTHENTICATED',
            'worker credential is not valid for this worker; enrol again with a join token',
          );
        }
        return 'verified';
      },
      canTakeOver: async (current) => {
        // The same agent process reconnecting (its old stream not yet noticed
        // dead) may take over; another process may not while the lease lives.
        if (current.instanceId === hello.instanceId) return true;
        const [holder] = await this.resources.store.readLeases([leaseKey(current.id)]);
        return holder === null;
      },
    });
  }

  /** Takes the worker's lease for this stream and makes it the worker's live stream here. */
  private async goLive(connection: WorkerConnection, worker: Worker, hello: AgentHello): Promise<void> {
    const { store, clock } = this.resources;
    if (hello.heldSessions.length > 0) {
      this.log.info(
        { workerId: worker.id, held: hello.heldSessions.map((s) => `${s.sessionId}@${s.epoch}`) },
        'worker reports sessions it still runs',
      );
    }
    this.graceTimers.get(worker.id)?.cancel();
    this.graceTimers.delete(worker.id);
    await store.forceLease(leaseKey(worker.id), this.holder(connection), this.options.leaseTtlMs);
    connection.workerId = worker.id;
    connection.workerName = worker.name;
    connection.instanceId = hello.instanceId;
    connection.lastRenewalMs = clock.monotonicMs();
    // Jitter keeps agents that connected together from all leaving together.
    connection.endAtMs = clock.monotonicMs() + this.options.maxConnectionAgeMs * (0.9 + this.resources.random() * 0.2);
    connection.state = 'live';
    this.deps.streams
      .register(connection)
      ?.terminate(
        'superseded by a new stream',
        new DomainError('ABORTED', 'superseded by a newer stream of the same worker'),
      );
    this.log.info(
      {
        workerId: worker.id,
        worker: worker.name,
        streamId: connection.streamId,
        peer: connection.peer,
        capacity: hello.capacity,
      },
      'worker online',
    );
  }

  /** Renews the worker's lease, buffers its metrics for the database and acknowledges. */
  async heartbeat(connection: WorkerConnection, heartbeat: AgentHeartbeat, correlationId: string): Promise<void> {
    if (connection.state !== 'live') {
      throw new DomainError('FAILED_PRECONDITION', 'the first message on a stream must be a hello');
    }
    const { store, clock } = this.resources;
    const renewed = await store.renewLease(
      leaseKey(connection.workerId),
      this.holder(connection),
      this.options.leaseTtlMs,
    );
    if (!renewed) {
      connection.terminate(
        'lease lost',
        new DomainError('ABORTED', 'lease lost: the worker is held by another stream or expired; reconnect'),
      );
      return;
    }
    connection.lastRenewalMs = clock.monotonicMs();
    const now = clock.now();
    this.deps.heartbeats.add({
      workerId: connection.workerId,
      streamId: connection.streamId,
      at: now,
      metrics: heartbeat.metrics,
    });
    if (heartbeat.draining && !connection.drainRecorded) {
      connection.drainRecorded = true;
      await this.recordAgentDraining(connection);
    }
    connection.send({
      correlationId,
      kind: 'heartbeatAck',
      sequence: heartbeat.sequence,
      leaseExpiresAt: new Date(now.getTime() + this.options.leaseTtlMs),
    });
  }

  /**
   * The stream is over: release the lease and record why. `clean` (the agent
   * said goodbye) is OFFLINE; `lost` (connection dropped, replica stopping) is
   * OFFLINE with a deadline, FAILED unless the worker is back within the
   * grace; an expired lease is FAILED at once.
   */
  async disconnect(connection: WorkerConnection, reason: string, outcome: DisconnectOutcome = 'lost'): Promise<void> {
    if (connection.state === 'closed') return;
    const wasLive = connection.state === 'live' || connection.workerId !== '';
    const finalReason = connection.endReason ?? reason;
    const finalOutcome = connection.endOutcome ?? outcome;
    connection.state = 'closed';
    connection.outbound.close();
    this.deps.router.streamEnded(connection);
    if (!wasLive) return;
    this.deps.streams.unregister(connection);
    const lastHeartbeat = this.deps.heartbeats.takeLatest(connection.workerId, connection.streamId);
    const { store, clock } = this.resources;
    try {
      if (finalOutcome === 'rebalance') {
        // The agent reconnects at once (here or to another replica) and takes
        // over its row. Its lease is left to run out, not released: released,
        // the sweeper would find an ONLINE worker without a lease and fail it
        // before the agent had a chance to come back; if it does not come back
        // within the lease, the sweeper fails it then.
        this.log.info({ workerId: connection.workerId, worker: connection.workerName }, 'stream ended to rebalance');
        return;
      }
      await store.releaseLease(leaseKey(connection.workerId), this.holder(connection));
      const now = clock.now();
      const event = await this.repository().detachStream({
        workerId: connection.workerId,
        streamId: connection.streamId,
        reason: finalReason,
        now,
        lastHeartbeat,
        status: finalOutcome === 'expired' ? 'FAILED' : 'OFFLINE',
        failAfter: finalOutcome === 'lost' ? new Date(now.getTime() + this.options.failureGraceMs) : null,
      });
      if (event) {
        this.log.info(
          { workerId: connection.workerId, worker: connection.workerName, reason: finalReason, status: event.kind },
          'worker disconnected',
        );
        await this.deps.changes.announce(event);
        if (finalOutcome === 'lost' && !this.stopped) this.armGraceTimer(connection.workerId);
      }
    } catch (error) {
      // The sweeper finds the worker when its lease expires, so nothing is lost.
      this.log.error(
        { err: error, workerId: connection.workerId },
        'could not record worker offline; the sweeper will',
      );
    }
  }

  /**
   * Finds workers whose lease ran out: streams on this replica whose agent
   * stopped heartbeating with the connection still open, and workers whose
   * stream lived on a replica that is gone.
   */
  async sweep(): Promise<void> {
    // One sweep at a time: a slow one (a loaded database) must not pile up
    // transactions behind it, each holding a pooled connection.
    if (this.stopped || this.sweeping) return;
    this.sweeping = true;
    try {
      await this.sweepOnce();
    } finally {
      this.sweeping = false;
    }
  }

  private async sweepOnce(): Promise<void> {
    await this.resources.store
      .forceLease(replicaKey(this.options.replicaId), this.options.replicaId, this.options.leaseTtlMs)
      .catch((error: unknown) => this.log.warn({ err: error }, "could not renew this replica's lease"));
    const { clock } = this.resources;
    const nowMs = clock.monotonicMs();
    const ended: WorkerConnection[] = [];
    for (const connection of this.deps.streams.values()) {
      if (connection.state === 'live' && nowMs >= connection.endAtMs) {
        // GOAWAY alone would not end a running stream: end it ourselves.
        connection.terminate(
          'connection age limit',
          new DomainError('UNAVAILABLE', 'connection age limit reached; reconnect (possibly to another replica)'),
          'rebalance',
        );
        ended.push(connection);
        continue;
      }
      if (connection.state === 'live' && isLeaseExpired(connection.lastRenewalMs, this.options.leaseTtlMs, nowMs)) {
        connection.terminate(
          'lease expired',
          new DomainError('DEADLINE_EXCEEDED', `no heartbeat for ${this.options.leaseTtlMs} ms: lease expired`),
          'expired',
        );
        ended.push(connection);
      }
    }
    // What this replica decided about its own streams is recorded before the
    // fleet-wide sweep: once a stream is gone from this replica, the sweeper
    // would otherwise judge its worker as a stray of a replica that is gone.
    await Promise.all(
      ended.map((connection) => this.disconnect(connection, connection.endReason ?? 'ended by the sweep')),
    );
    try {
      await this.sweeper.tick();
    } catch (error) {
      this.log.error({ err: error }, 'fleet sweep failed; retrying next interval');
    }
  }

  /**
   * Declares the worker FAILED the moment its grace ends (the sweeper would
   * find it too, up to a sweep later). Guarded in the database: a worker that
   * came back meanwhile has no deadline any more.
   */
  private armGraceTimer(workerId: string): void {
    this.graceTimers.get(workerId)?.cancel();
    const timer = this.resources.scheduler.schedule(this.options.failureGraceMs + 5, () => {
      this.graceTimers.delete(workerId);
      void this.repository()
        .failOverdue(this.resources.clock.now(), workerId)
        .then(async (events) => {
          for (const event of events) {
            this.log.warn({ workerId }, 'worker failed: connection lost and not back in time');
            await this.deps.changes.announce(event);
          }
        })
        .catch((error: unknown) =>
          this.log.error({ err: error, workerId }, 'could not declare a worker failed; the sweeper will'),
        );
    });
    this.graceTimers.set(workerId, timer);
  }

  /** The agent started draining by itself (SIGTERM): no new work for it from now on. */
  private async recordAgentDraining(connection: WorkerConnection): Promise<void> {
    try {
      const worker = await this.repository().findById(connection.workerId);
      if (!worker || worker.schedulability === 'DRAINING' || worker.streamId !== connection.streamId) return;
      await this.deps.admin.applyAdminAction(this.repository(), {
        workerId: connection.workerId,
        action: 'drain',
        reason: AGENT_DRAINING_REASON,
        actorUserId: null,
      });
    } catch (error) {
      this.log.warn({ err: error, workerId: connection.workerId }, 'could not record that the agent is draining');
    }
  }

  /** Writes buffered heartbeats; one statement per interval whatever the fleet size. */
  async flushHeartbeats(): Promise<void> {
    return this.deps.heartbeats.flush();
  }

  /**
   * Ends every stream so agents reconnect to another replica, waits for them
   * to be recorded offline, then stops the timers.
   */
  async shutdown(): Promise<void> {
    this.stopped = true;
    await this.deps.changes.stop();
    await this.deps.router.stop();
    this.sweepTimer?.cancel();
    this.flushTimer?.cancel();
    for (const timer of this.graceTimers.values()) timer.cancel();
    this.graceTimers.clear();
    await this.sweeper
      .resign()
      .catch((error: unknown) => this.log.warn({ err: error }, 'could not resign the sweeper role'));
    await this.resources.store
      .releaseLease(replicaKey(this.options.replicaId), this.options.replicaId)
      .catch(() => undefined);
    const live = [...this.deps.streams.values()];
    for (const connection of live) {
      connection.terminate(
        'control plane replica shutting down',
        new DomainError('UNAVAILABLE', 'control plane replica is shutting down; reconnect'),
      );
    }
    await Promise.all(live.map((connection) => this.disconnect(connection, 'control plane replica shutting down')));
    await this.flushHeartbeats();
  }

  private holder(connection: WorkerConnection): string {
    return leaseHolder(this.options.replicaId, connection.streamId);
  }

  private repository(): WorkerRepository {
    return new WorkerRepository(this.resources.orm.em.fork());
  }
}
