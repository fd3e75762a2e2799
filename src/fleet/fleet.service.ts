import { randomUUID } from 'node:crypto';
import type { Registry } from 'prom-client';
import type { Resources } from '../platform/resources.js';
import { DomainError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type {
  AgentHeartbeat,
  AgentHello,
  CommandResult,
  ControlEnvelope,
  FleetOptions,
  RequestResult,
  WorkerCommand,
  WorkerQuery,
} from './fleet.types.js';
import { WorkerConnection } from './worker-connection.js';
import { WorkerRepository } from './worker.repository.js';
import { isLeaseExpired, leaseHolder, leaseKey, ownerReplica, replicaKey } from './lease.js';
import { FleetSweeper } from './fleet-sweeper.js';
import { HeartbeatBuffer } from './heartbeat-buffer.js';
import { WorkerRefusals } from './worker-refusals.js';
import type { ReassignmentHoldService } from './reassignment-hold.service.js';
import type { WorkerMetricsRollup } from './worker-metrics-rollup.entity.js';
import { summariseFleet, type FleetSummary } from './fleet-summary.js';
import { WorkerEvent } from './worker-event.entity.js';
import { Worker } from './worker.entity.js';
import type { AdminAction } from './worker.state.js';
import type { DisconnectOutcome } from './worker-connection.js';

const CHANGES_CHANNEL = 'fleet:changes';
/** Reason recorded when an agent drains itself (SIGTERM); a restarted agent is schedulable again. */
const AGENT_DRAINING_REASON = 'the agent is draining (stopping)';
/** Each replica listens on its own channel for commands to relay to its streams, and for replies. */
const replicaChannel = (replicaId: string) => `fleet:replica:${replicaId}`;

/** A committed change to a worker, as watchers receive it. */
export interface WorkerChange {
  worker: Worker;
  event: WorkerEvent;
}
import type { TokenService } from '../identity/token.service.js';
import type { JoinTokenService } from './join-token.service.js';

/**
 * The fleet as seen by this replica: accepts agent streams, keeps each
 * worker's lease in the coordination store, records heartbeats, and turns
 * workers offline when their stream ends or their lease runs out.
 */
export class FleetService {
  private readonly connections = new Map<string, WorkerConnection>(); // by worker id
  private readonly log: Logger;
  private sweepTimer: NodeJS.Timeout | undefined;
  private flushTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly watchers = new Set<(change: WorkerChange) => void>();
  private unsubscribeReplica: (() => Promise<void>) | undefined;
  /** Commands sent down a local stream, waiting for the agent's CommandAck (by correlation id). */
  private readonly awaitingAck = new Map<string, (result: CommandResult) => void>();
  /** Commands relayed to another replica, waiting for its reply (by request id). */
  private readonly awaitingReplica = new Map<string, (result: CommandResult) => void>();
  private unsubscribe: (() => Promise<void>) | undefined;
  /** Heartbeats and their per-minute rollups, written every metricsFlushIntervalMs. */
  private readonly heartbeats: HeartbeatBuffer;
  /** What workers send that is refused, here and in the sessions capability: counted, warned about sparingly. */
  readonly refusals: WorkerRefusals;
  /** Timers that declare a lost worker FAILED when its grace ends (by worker id). */
  private readonly graceTimers = new Map<string, NodeJS.Timeout>();
  private readonly sweeper: FleetSweeper;
  private readonly localListeners: ((event: WorkerEvent) => void)[] = [];
  private readonly helloListeners: ((workerId: string, held: AgentHello['heldSessions'], helloAt: Date) => void)[] = [];
  private sweeping = false;

  constructor(
    private readonly resources: Resources,
    private readonly options: FleetOptions,
    private readonly auth: { tokens: TokenService; joinTokens: JoinTokenService },
    readonly holds: ReassignmentHoldService,
    /** The process's Prometheus registry (app.ts), served at GET /metrics. */
    metrics: Registry,
  ) {
    this.log = resources.logger.child({ component: 'fleet' });
    this.heartbeats = new HeartbeatBuffer(() => this.repository(), this.log);
    this.refusals = new WorkerRefusals(metrics, {
      clock: resources.clock,
      logger: this.log,
      logIntervalMs: options.workerWarningIntervalMs,
    });
    this.sweeper = new FleetSweeper(
      resources,
      {
        replicaId: options.replicaId,
        leaseTtlMs: options.leaseTtlMs,
        leadershipTtlMs: options.sweeperLeadershipTtlMs,
        guard: options.guard,
      },
      holds,
      (event) => this.announce(event),
      (workerId) => this.connections.has(workerId),
    );
  }

  async start(): Promise<void> {
    this.unsubscribe = await this.resources.store.subscribe(CHANGES_CHANNEL, (message) => {
      void this.deliver(message);
    });
    this.unsubscribeReplica = await this.resources.store.subscribe(
      replicaChannel(this.options.replicaId),
      (message) => {
        void this.onReplicaMessage(message);
      },
    );
    await this.resources.store.forceLease(
      replicaKey(this.options.replicaId),
      this.options.replicaId,
      this.options.leaseTtlMs,
    );
    this.sweepTimer = setInterval(() => void this.sweep(), this.options.sweepIntervalMs);
    this.flushTimer = setInterval(() => void this.flushHeartbeats(), this.options.metricsFlushIntervalMs);
  }

  /** Number of agent streams this replica holds. */
  get connectionCount(): number {
    return this.connections.size;
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
    const { store, clock } = this.resources;
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
        ? await this.auth.tokens.verifyWorkerCredential(credential.token)
        : undefined;
    const now = clock.now();
    const { worker, event: online } = await this.repository().attachStream({
      hello,
      streamId: connection.streamId,
      replicaId: this.options.replicaId,
      now,
      authorize: async (em, current) => {
        if (credential.kind === 'join-token') {
          await this.auth.joinTokens.redeem(em, credential.token);
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
        const [holder] = await store.readLeases([leaseKey(current.id)]);
        return holder === null;
      },
    });
    if (connection.isClosed()) {
      // The stream ended while the Hello was being stored: undo, or the
      // worker would look online with nobody behind it.
      await this.repository().detachStream({
        workerId: worker.id,
        streamId: connection.streamId,
        reason: 'stream closed during registration',
        now: clock.now(),
      });
      return;
    }
    if (hello.heldSessions.length > 0) {
      this.log.info(
        { workerId: worker.id, held: hello.heldSessions.map((s) => `${s.sessionId}@${s.epoch}`) },
        'worker reports sessions it still runs',
      );
    }
    clearTimeout(this.graceTimers.get(worker.id));
    this.graceTimers.delete(worker.id);
    const superseded = this.connections.get(worker.id);
    if (superseded && superseded !== connection) {
      superseded.terminate(
        'superseded by a new stream',
        new DomainError('ABORTED', 'superseded by a newer stream of the same worker'),
      );
    }
    await store.forceLease(leaseKey(worker.id), this.holder(connection), this.options.leaseTtlMs);
    connection.workerId = worker.id;
    connection.workerName = worker.name;
    connection.instanceId = hello.instanceId;
    connection.lastRenewalMs = clock.monotonicMs();
    // Jitter keeps agents that connected together from all leaving together.
    connection.endAtMs = clock.monotonicMs() + this.options.maxConnectionAgeMs * (0.9 + Math.random() * 0.2);
    connection.state = 'live';
    this.connections.set(worker.id, connection);
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
    await this.announce(online);
    if (worker.schedulability === 'DRAINING' && worker.schedulabilityReason === AGENT_DRAINING_REASON) {
      // It drained itself to stop (a rolling restart, say) and is back: not an operator's drain.
      await this.applyAdminAction(this.repository(), {
        workerId: worker.id,
        action: 'uncordon',
        reason: 'the agent restarted after draining itself',
        actorUserId: null,
      });
    }
    // After the Welcome is queued, so commands the reconciliation sends arrive after it.
    queueMicrotask(() => {
      for (const listener of this.helloListeners) listener(worker.id, hello.heldSessions, now);
    });
    connection.send({
      correlationId,
      kind: 'welcome',
      workerId: worker.id,
      heartbeatIntervalMs: this.options.heartbeatIntervalMs,
      leaseTtlMs: this.options.leaseTtlMs,
      replicaId: this.options.replicaId,
      workerCredential: await this.auth.tokens.issueWorkerCredential({
        workerId: worker.id,
        generation: worker.credentialGeneration,
      }),
    });
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
    this.heartbeats.add({
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
    // Nobody will answer what was sent on this stream: say so now rather than at each deadline.
    for (const correlationId of connection.awaiting) {
      this.awaitingAck.get(correlationId)?.({ delivered: false, detail: 'the worker disconnected before answering' });
    }
    if (!wasLive) return;
    if (this.connections.get(connection.workerId) === connection) this.connections.delete(connection.workerId);
    const lastHeartbeat = this.heartbeats.takeLatest(connection.workerId, connection.streamId);
    const { store, clock } = this.resources;
    try {
      await store.releaseLease(leaseKey(connection.workerId), this.holder(connection));
      if (finalOutcome === 'rebalance') {
        // The agent reconnects at once and takes over its row; if it does not,
        // the sweeper finds an ONLINE worker without a lease and fails it.
        this.log.info({ workerId: connection.workerId, worker: connection.workerName }, 'stream ended to rebalance');
        return;
      }
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
        await this.announce(event);
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
    for (const connection of this.connections.values()) {
      if (connection.state === 'live' && nowMs >= connection.endAtMs) {
        // GOAWAY alone would not end a running stream: end it ourselves.
        connection.terminate(
          'connection age limit',
          new DomainError('UNAVAILABLE', 'connection age limit reached; reconnect (possibly to another replica)'),
          'rebalance',
        );
        continue;
      }
      if (connection.state === 'live' && isLeaseExpired(connection.lastRenewalMs, this.options.leaseTtlMs, nowMs)) {
        connection.terminate(
          'lease expired',
          new DomainError('DEADLINE_EXCEEDED', `no heartbeat for ${this.options.leaseTtlMs} ms: lease expired`),
          'expired',
        );
      }
    }
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
    clearTimeout(this.graceTimers.get(workerId));
    const timer = setTimeout(() => {
      this.graceTimers.delete(workerId);
      void this.repository()
        .failOverdue(this.resources.clock.now(), workerId)
        .then(async (events) => {
          for (const event of events) {
            this.log.warn({ workerId }, 'worker failed: connection lost and not back in time');
            await this.announce(event);
          }
        })
        .catch((error: unknown) =>
          this.log.error({ err: error, workerId }, 'could not declare a worker failed; the sweeper will'),
        );
    }, this.options.failureGraceMs + 5);
    timer.unref();
    this.graceTimers.set(workerId, timer);
  }

  /** The agent started draining by itself (SIGTERM): no new work for it from now on. */
  private async recordAgentDraining(connection: WorkerConnection): Promise<void> {
    try {
      const worker = await this.repository().findById(connection.workerId);
      if (!worker || worker.schedulability === 'DRAINING' || worker.streamId !== connection.streamId) return;
      await this.applyAdminAction(this.repository(), {
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
    return this.heartbeats.flush();
  }

  /** The worker's per-minute metrics for the last `minutes` minutes. */
  async metricsHistory(
    repository: WorkerRepository,
    workerId: string,
    minutes: number,
  ): Promise<WorkerMetricsRollup[]> {
    const since = new Date(this.resources.clock.now().getTime() - minutes * 60_000);
    return repository.metricsHistory(workerId, since);
  }

  async listWorkers(repository: WorkerRepository, query: WorkerQuery): Promise<Worker[]> {
    return repository.list(query);
  }

  /** Cordon, uncordon, drain or remove a worker (rules in worker.state.ts). */
  async applyAdminAction(
    repository: WorkerRepository,
    input: { workerId: string; action: AdminAction; reason: string; actorUserId: string | null },
  ): Promise<Worker> {
    const { worker, event } = await repository.applyAdminAction({ ...input, now: this.resources.clock.now() });
    if (!event) return worker;
    this.log.info(
      { workerId: worker.id, worker: worker.name, event: event.kind, reason: event.reason },
      'worker changed by operator',
    );
    if (event.kind === 'REMOVED') {
      this.connections
        .get(worker.id)
        ?.terminate(
          'removed by an operator',
          new DomainError('PERMISSION_DENIED', 'this worker was removed from the fleet'),
          'clean',
        );
    }
    await this.announce(event);
    return worker;
  }

  async summary(repository: WorkerRepository): Promise<FleetSummary> {
    return summariseFleet(await repository.findAll());
  }

  /**
   * Delivers a command to a worker wherever its stream lives: directly when
   * this replica holds it, otherwise through the owning replica (recorded on
   * the worker) over the coordination store, with a deadline either way.
   */
  async sendCommand(workerId: string, command: WorkerCommand, timeoutMs = 5000): Promise<CommandResult> {
    const local = this.connections.get(workerId);
    if (local?.state === 'live') return this.sendLocal(local, command, timeoutMs);
    // The worker's lease names the replica holding its stream (the routing table);
    // that replica's own lease says whether anyone is there to relay.
    const [holder] = await this.resources.store.readLeases([leaseKey(workerId)]);
    const owner = ownerReplica(holder ?? null);
    if (!owner || owner === this.options.replicaId) return { delivered: false, detail: 'the worker is not connected' };
    const [ownerAlive] = await this.resources.store.readLeases([replicaKey(owner)]);
    if (ownerAlive === null) {
      return { delivered: false, detail: `the replica holding the worker's stream (${owner}) is gone` };
    }
    const requestId = randomUUID();
    const reply = this.waitFor(
      this.awaitingReplica,
      requestId,
      timeoutMs + 500,
      'no answer from the replica holding the worker',
    );
    await this.resources.store.publish(
      replicaChannel(owner),
      JSON.stringify({ type: 'command', requestId, from: this.options.replicaId, workerId, command, timeoutMs }),
    );
    return reply;
  }

  /**
   * The agent answered a command sent down its stream. An answer to nothing
   * this stream waits for (too late, or another stream's command) is dropped.
   */
  commandAcknowledged(connection: WorkerConnection, correlationId: string, accepted: boolean, detail: string): void {
    const waiting = connection.awaiting.has(correlationId) ? this.awaitingAck.get(correlationId) : undefined;
    if (waiting) {
      waiting({ delivered: accepted, detail });
      return;
    }
    this.refusals.record(connection.workerId, 'unknown_ack', (suppressed) =>
      this.log.info(
        { workerId: connection.workerId, correlationId, suppressed },
        'command acknowledgement for no waiting command dropped (late or unknown)',
      ),
    );
  }

  /** Responses that came after their request's deadline (dropped), since start. */
  lateResponses = 0;

  /** The agent answered a request sent down its stream; after the deadline nobody waits and it is dropped. */
  responseReceived(connection: WorkerConnection, correlationId: string, result: RequestResult): void {
    const waiting = connection.awaiting.has(correlationId) ? this.awaitingAck.get(correlationId) : undefined;
    if (waiting) {
      waiting({ delivered: true, detail: '', result });
      return;
    }
    this.lateResponses += 1;
    this.refusals.record(connection.workerId, 'late_response', (suppressed) =>
      this.log.info(
        { workerId: connection.workerId, correlationId, lateResponses: this.lateResponses, suppressed },
        'late response dropped',
      ),
    );
  }

  /**
   * Calls `listener` for every worker change this replica commits (not those
   * of other replicas: each change is acted on once, by its writer).
   */
  onLocalChange(listener: (event: WorkerEvent) => void): void {
    this.localListeners.push(listener);
  }

  /** Calls `listener` with what a worker says it still runs, each time it (re)connects to this replica. */
  onHello(listener: (workerId: string, held: AgentHello['heldSessions'], helloAt: Date) => void): void {
    this.helloListeners.push(listener);
  }

  /**
   * Where a session's decrypted auth state comes from when an AssignSession
   * goes down a stream. Read here, on the replica holding the stream, so
   * credentials never travel between replicas through the coordination store.
   */
  setAssignmentLoader(load: (sessionId: string) => Promise<Uint8Array>): void {
    this.loadAuthState = load;
  }

  private loadAuthState: (sessionId: string) => Promise<Uint8Array> = async () => new Uint8Array();

  private async sendLocal(
    connection: WorkerConnection,
    command: WorkerCommand,
    timeoutMs: number,
  ): Promise<CommandResult> {
    let envelope: ControlEnvelope;
    try {
      envelope =
        command.kind === 'assignSession'
          ? { correlationId: randomUUID(), ...command, authState: await this.loadAuthState(command.sessionId) }
          : { correlationId: randomUUID(), ...command };
    } catch (error) {
      this.log.error({ err: error, command: command.kind }, 'could not prepare a command for the worker');
      return { delivered: false, detail: error instanceof Error ? error.message : String(error) };
    }
    const { correlationId } = envelope;
    const ack = this.waitFor(this.awaitingAck, correlationId, timeoutMs, 'the agent did not acknowledge in time');
    connection.awaiting.add(correlationId);
    connection.send(envelope);
    return ack.finally(() => connection.awaiting.delete(correlationId));
  }

  private waitFor(
    pending: Map<string, (result: CommandResult) => void>,
    id: string,
    timeoutMs: number,
    timeoutDetail: string,
  ): Promise<CommandResult> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => settle({ delivered: false, detail: timeoutDetail }), timeoutMs);
      const settle = (result: CommandResult) => {
        clearTimeout(timer);
        pending.delete(id);
        resolve(result);
      };
      pending.set(id, settle);
    });
  }

  private async onReplicaMessage(raw: string): Promise<void> {
    try {
      const message = JSON.parse(raw) as
        | {
            type: 'command';
            requestId: string;
            from: string;
            workerId: string;
            command: WorkerCommand;
            timeoutMs: number;
          }
        | { type: 'reply'; requestId: string; result: CommandResult };
      if (message.type === 'reply') {
        this.awaitingReplica.get(message.requestId)?.(message.result);
        return;
      }
      const connection = this.connections.get(message.workerId);
      const result =
        connection?.state === 'live'
          ? await this.sendLocal(connection, message.command, message.timeoutMs)
          : { delivered: false, detail: 'the worker is not connected to the replica it was recorded on' };
      await this.resources.store.publish(
        replicaChannel(message.from),
        JSON.stringify({ type: 'reply', requestId: message.requestId, result }),
      );
    } catch (error) {
      this.log.warn({ err: error }, 'could not handle a message from another replica');
    }
  }

  /**
   * Calls `onChange` for every worker change on any replica (through the
   * coordination store), until the returned function is called.
   */
  watch(onChange: (change: WorkerChange) => void): () => void {
    this.watchers.add(onChange);
    return () => this.watchers.delete(onChange);
  }

  async getWorker(repository: WorkerRepository, id: string): Promise<Worker> {
    const worker = await repository.findById(id);
    if (!worker) throw DomainError.notFound('worker', id);
    return worker;
  }

  /**
   * Ends every stream so agents reconnect to another replica, waits for them
   * to be recorded offline, then stops the timers.
   */
  async shutdown(): Promise<void> {
    this.stopped = true;
    await this.unsubscribe?.();
    await this.unsubscribeReplica?.();
    clearInterval(this.sweepTimer);
    clearInterval(this.flushTimer);
    for (const timer of this.graceTimers.values()) clearTimeout(timer);
    this.graceTimers.clear();
    await this.sweeper
      .resign()
      .catch((error: unknown) => this.log.warn({ err: error }, 'could not resign the sweeper role'));
    await this.resources.store
      .releaseLease(replicaKey(this.options.replicaId), this.options.replicaId)
      .catch(() => undefined);
    const live = [...this.connections.values()];
    for (const connection of live) {
      connection.terminate(
        'control plane replica shutting down',
        new DomainError('UNAVAILABLE', 'control plane replica is shutting down; reconnect'),
      );
    }
    await Promise.all(live.map((connection) => this.disconnect(connection, 'control plane replica shutting down')));
    await this.flushHeartbeats();
  }

  // Tells every replica's watchers; the change itself is already committed.
  private async announce(event: WorkerEvent): Promise<void> {
    for (const listener of this.localListeners) listener(event);
    if (this.watchers.size === 0 && this.resources.store.kind === 'memory') return;
    try {
      await this.resources.store.publish(
        CHANGES_CHANNEL,
        JSON.stringify({ workerId: event.workerId, eventId: event.id }),
      );
    } catch (error) {
      this.log.warn({ err: error }, 'could not announce a worker change to watchers');
    }
  }

  private async deliver(message: string): Promise<void> {
    if (this.watchers.size === 0) return;
    try {
      const { workerId, eventId } = JSON.parse(message) as { workerId: string; eventId: string };
      const em = this.resources.orm.em.fork();
      const [worker, event] = await Promise.all([
        em.findOne(Worker, { id: workerId }),
        em.findOne(WorkerEvent, { id: eventId }),
      ]);
      if (!worker || !event) return;
      for (const watcher of this.watchers) watcher({ worker, event });
    } catch (error) {
      this.log.warn({ err: error }, 'could not deliver a worker change to watchers');
    }
  }

  private holder(connection: WorkerConnection): string {
    return leaseHolder(this.options.replicaId, connection.streamId);
  }

  private repository(): WorkerRepository {
    return new WorkerRepository(this.resources.orm.em.fork());
  }
}
