import { randomBytes, randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { Engine } from '../gen/switchboard/v1/fleet_pb.js';
import {
  type AgentMessage,
  AgentMessageSchema,
  type ControlMessage,
  type HelloSchema,
} from '../gen/switchboard/v1/worker_pb.js';
import { systemClock, type Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { systemRandom, type Random } from '../lib/random.js';
import { every, systemScheduler, type Scheduler, type Timer } from '../lib/timers.js';
import { backoffDelay, type BackoffPolicy } from '../lib/backoff.js';
import {
  grpcConnector,
  type AgentStream,
  type ControlPlaneChannel,
  type ControlPlaneConnector,
  type StreamError,
} from './control-plane-client.js';
import { MetricsCollector, toResourceMetrics } from './metrics.js';
import { OutboundCheck } from './outbound-check.js';
import { CredentialStore } from './credential-store.js';
import { SessionEventUplink, type SessionEventsPayload, type WriteResult } from './session-event-uplink.js';
import { createDefaultEngineFactory, createEngines, type EngineFactory } from './sessions/engines.js';
import { SessionHost, type CommandAckInit } from './sessions/session-host.js';

/**
 * The agent's lifecycle:
 * - `idle`: built, not started.
 * - `connecting`: a stream is open and the Hello sent; waiting for the Welcome.
 * - `connected`: welcomed; heartbeating at the interval the control plane set.
 * - `backoff`: the stream ended; waiting (jittered, capped) before the next attempt.
 * - `stopping`: stop() was called; the stream is being ended.
 * - `stopped`: nothing runs; final.
 */
export type AgentState = 'idle' | 'connecting' | 'connected' | 'backoff' | 'stopping' | 'stopped';

/** Everything the agent needs, compiled once (defaults applied) by agent/config.ts. */
export interface AgentOptions {
  /** host:port of a control plane, or several comma-separated: tried in turn when a stream ends. */
  controlPlaneAddress: string;
  workerName: string;
  capacity: number;
  labels: Record<string, string>;
  engines: ('SANDBOX' | 'BAILEYS')[];
  version: string;
  backoff: BackoffPolicy;
  keepaliveTimeMs: number;
  keepaliveTimeoutMs: number;
  /** How long to wait for the Welcome before giving up on a stream. */
  welcomeTimeoutMs: number;
  /** Enrols the worker the first time (or after its credential was revoked). */
  joinToken: string | undefined;
  /** Where the worker credential is kept between runs. */
  credentialFile: string;
  /** On SIGTERM, how long to wait for the work held here to move before exiting anyway. */
  drainTimeoutMs: number;
  /**
   * Builds the one engine of each kind in `engines`, on the agent's clock and
   * scheduler. Default: the real ones (sandbox, Baileys). Tests inject fakes
   * or a shared sandbox network.
   */
  engineFactory?: EngineFactory;
  /**
   * The sandbox's send log file (SANDBOX_SEND_LOG): sends recorded by message
   * id, shared by every agent on the machine, so a message dispatched again
   * after a crash is not sent twice. Unset: dedupe within the process only.
   */
  sandboxSendLog?: string;
}

/**
 * What the agent takes from its surroundings instead of reaching for
 * globals: time, timers, jitter and the way to the control plane. main.ts
 * passes the system ones; a test passes one ManualScheduler as clock and
 * scheduler, a pinned random and an in-memory connector, and runs the
 * agent's timing rules in milliseconds.
 */
export interface AgentRuntime {
  /** Measures the lease, heartbeat silence and metrics intervals; stamps heartbeats. */
  clock: Clock;
  /**
   * Every timer: heartbeats, the welcome timeout, reconnect backoff, the
   * drain deadline, and the timers of the sessions and engines.
   */
  scheduler: Scheduler;
  /** Jitter of the reconnect backoff. */
  random: Random;
  /** Opens the channel to a control-plane address (gRPC unless a test says otherwise). */
  connect: ControlPlaneConnector;
}

const ENGINES = { SANDBOX: Engine.SANDBOX, BAILEYS: Engine.BAILEYS } as const;

/**
 * One worker process's link to the control plane: keeps a single stream
 * open, says Hello, heartbeats real metrics, and reconnects with backoff,
 * keeping its worker id and instance id across reconnects.
 */
export class Agent extends EventEmitter<{
  state: [AgentState];
  welcome: [string];
  fenced: [number];
  drain: [string];
  shutdown: [string];
  /** An operator removed this worker from the fleet: running on is pointless until it is enrolled again. */
  removed: [string];
}> {
  private _state: AgentState = 'idle';
  /**
   * Tells this process from an earlier one of the same worker. From crypto,
   * not the injected Random: an identifier must never repeat.
   */
  private readonly instanceId = randomBytes(12).toString('hex');
  private readonly addresses: string[];
  private readonly channels = new Map<string, ControlPlaneChannel>();
  private addressIndex = 0;
  /** Sequence of the last heartbeat the control plane acknowledged. */
  private ackedSequence = 0n;
  private readonly metrics: MetricsCollector;
  private stream: AgentStream | undefined;
  /** The stream the control plane welcomed; session events go up on it. */
  private welcomedStream: AgentStream | undefined;
  /** Session events on their way up: batched, and held while reconnecting. */
  private readonly uplink: SessionEventUplink;
  /** drainAndStop() waiting for its heartbeat to be acknowledged. */
  private readonly ackWaiters = new Set<{ sequence: bigint; resolve: () => void }>();
  /** The sessions this worker runs. */
  readonly sessions: SessionHost;
  private heartbeatTimer: Timer | undefined;
  private backoffTimer: Timer | undefined;
  private wakeBackoff: (() => void) | undefined;
  private sequence = 0n;
  private attempt = 0;
  private running: Promise<void> | undefined;
  /** Assigned by the first Welcome; presented on every reconnect. */
  workerId = '';
  private usingStoredCredential = false;
  private leaseTtlMs = 10_000;
  /** Told to drain (by the control plane); reported in every heartbeat. */
  draining = false;
  /**
   * Draining on its own initiative (SIGTERM): reported in heartbeats, and
   * assignments are refused. An operator's Drain is the control plane's
   * state already, and an Uncordon there must not be undone by the agent.
   */
  private leaving = false;
  private lastAckMs = 0;
  private readonly credentials: CredentialStore;
  private readonly outboundCheck = new OutboundCheck();
  private readonly clock: Clock;
  private readonly scheduler: Scheduler;
  private readonly random: Random;
  private readonly connect: ControlPlaneConnector;

  /** `runtime` defaults to the system clock, real timers, Math.random and gRPC with the options' keepalive. */
  constructor(
    readonly options: AgentOptions,
    private readonly log: Logger,
    runtime: Partial<AgentRuntime> = {},
  ) {
    super();
    this.clock = runtime.clock ?? systemClock;
    this.scheduler = runtime.scheduler ?? systemScheduler;
    this.random = runtime.random ?? systemRandom;
    this.connect = runtime.connect ?? grpcConnector(options);
    this.credentials = new CredentialStore(options.credentialFile);
    this.addresses = options.controlPlaneAddress.split(',').map((address) => address.trim());
    const time = { clock: this.clock, scheduler: this.scheduler };
    this.uplink = new SessionEventUplink({
      write: (payload) => this.writeSessionEvents(payload),
      scheduler: this.scheduler,
      log,
    });
    const engineFactory =
      options.engineFactory ?? createDefaultEngineFactory({ sandboxSendLog: options.sandboxSendLog });
    this.sessions = new SessionHost({
      engines: createEngines(options.engines, engineFactory, time),
      capacity: options.capacity,
      send: (event) => this.uplink.push(event),
      logger: log.child({ component: 'sessions' }),
      ...time,
    });
    this.metrics = new MetricsCollector(() => this.sessions.count, this.clock);
  }

  /** The channel to the address this attempt uses (one per address, kept for reuse). */
  private channel(): ControlPlaneChannel {
    const address = this.addresses[this.addressIndex % this.addresses.length] as string;
    let channel = this.channels.get(address);
    if (!channel) {
      channel = this.connect(address);
      this.channels.set(address, channel);
    }
    return channel;
  }

  get state(): AgentState {
    return this._state;
  }

  start(): void {
    if (this._state !== 'idle') throw new Error(`agent cannot start from state ${this._state}`);
    this.running = this.run();
  }

  /**
   * Stops every session (keeping its auth state, so it resumes elsewhere;
   * final checkpoints still go up), ends the stream cleanly (the control
   * plane marks the worker offline at once and places the sessions
   * elsewhere) and stops.
   */
  async stop(): Promise<void> {
    if (this._state === 'stopped') return;
    if (this._state === 'idle') {
      this.setState('stopped');
      return;
    }
    this.setState('stopping');
    this.stopHeartbeats();
    await this.sessions.stopAll('agent stopping', 'shutdown');
    // What is still batched goes up now, if a stream takes it; the rest is lost with the process.
    this.uplink.flush();
    const dropped = this.uplink.clear();
    if (dropped > 0) this.log.warn({ dropped }, 'session events not sent before stopping');
    this.backoffTimer?.cancel();
    this.wakeBackoff?.();
    this.stream?.end();
    await this.running;
    this.ackWaiters.clear();
    for (const channel of this.channels.values()) channel.close();
    this.metrics.close();
    this.setState('stopped');
  }

  /**
   * Graceful stop (SIGTERM): tells the control plane this worker is draining
   * (no new work; what it runs moves elsewhere), waits until the control plane
   * has acknowledged that and no session is held here (it stops them one by
   * one, with StopSession, as it moves them; the last one's answer goes up
   * first), or `drainTimeoutMs` passed, then stops (stopping whatever is
   * still held). Waits on those events and one timer, never polling.
   */
  async drainAndStop(): Promise<void> {
    if (this.isStopping() || this._state === 'idle') return this.stop();
    let timer: Timer | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = this.scheduler.schedule(this.options.drainTimeoutMs, resolve);
    });
    this.draining = true;
    this.leaving = true;
    this.emit('drain', 'agent stopping');
    this.log.info({ timeoutMs: this.options.drainTimeoutMs }, 'draining before exit');
    try {
      const stream = this.stream;
      if (this._state === 'connected' && stream) {
        await this.unlessLate(this.acknowledged(this.beat(stream)), deadline);
      }
      const moved = await this.unlessLate(this.sessions.whenIdle(), deadline);
      if (!moved) this.log.warn({ held: this.sessions.count }, 'drain timeout: exiting with work still held');
    } finally {
      timer?.cancel();
    }
    await this.stop();
  }

  /**
   * Waits for `event`; returns whether it came before `deadline` and before
   * the agent started stopping (an event that already came always counts).
   */
  private async unlessLate(event: Promise<void>, deadline: Promise<void>): Promise<boolean> {
    let onState: ((state: AgentState) => void) | undefined;
    const stopping = new Promise<void>((resolve) => {
      if (this.isStopping()) return resolve();
      onState = (state) => {
        if (state === 'stopping' || state === 'stopped') resolve();
      };
      this.on('state', onState);
    });
    try {
      // Listed first, so an event that already came wins over a deadline already passed.
      return await Promise.race([event.then(() => true), deadline.then(() => false), stopping.then(() => false)]);
    } finally {
      if (onState) this.off('state', onState);
    }
  }

  /** Resolves once the control plane has acknowledged heartbeat `sequence` or a later one. */
  private acknowledged(sequence: bigint): Promise<void> {
    if (this.ackedSequence >= sequence) return Promise.resolve();
    return new Promise((resolve) => this.ackWaiters.add({ sequence, resolve }));
  }

  /** Resolves when the agent is connected (welcomed). */
  async connected(): Promise<void> {
    if (this._state === 'connected') return;
    await new Promise<void>((resolve) => {
      const onState = (state: AgentState) => {
        if (state === 'connected') {
          this.off('state', onState);
          resolve();
        }
      };
      this.on('state', onState);
    });
  }

  private async run(): Promise<void> {
    while (this._state !== 'stopping') {
      const outcome = await this.holdStream();
      if (this.isStopping()) break;
      // The replica may be gone: the next attempt goes to the next address.
      this.addressIndex += 1;
      const delay = backoffDelay(this.attempt++, this.options.backoff, this.random);
      this.log.warn({ reason: outcome, retryInMs: delay, attempt: this.attempt }, 'stream ended; reconnecting');
      this.setState('backoff');
      await new Promise<void>((resolve) => {
        this.wakeBackoff = resolve;
        this.backoffTimer = this.scheduler.schedule(delay, resolve);
      });
    }
  }

  /** Opens one stream and holds it until it ends; returns why it ended. */
  private holdStream(): Promise<string> {
    this.setState('connecting');
    return new Promise<string>((resolve) => {
      const stream = this.channel().openStream();
      this.stream = stream;
      let settled = false;
      const welcomeTimer = this.scheduler.schedule(this.options.welcomeTimeoutMs, () => stream.cancel());
      const finish = (reason: string) => {
        if (settled) return;
        settled = true;
        welcomeTimer.cancel();
        if (this.welcomedStream === stream) this.welcomedStream = undefined;
        // The stream may end first (the control plane cut it while we were
        // frozen): the lease is just as lapsed, so fence all the same.
        const silentMs = this.clock.monotonicMs() - this.lastAckMs;
        if (this.heartbeatTimer && silentMs >= this.leaseTtlMs) this.fence(stream, silentMs);
        this.stopHeartbeats();
        this.stream = undefined;
        resolve(reason);
      };

      stream.on('data', (message: ControlMessage) => {
        if (message.payload.case === 'welcome') welcomeTimer.cancel();
        this.onControlMessage(stream, message);
      });
      stream.on('error', (error: StreamError) => {
        if (error.code === GrpcStatus.UNAUTHENTICATED && this.usingStoredCredential) {
          // Revoked or re-enrolled elsewhere: forget it and use the join token, if there is one.
          this.credentials.clear();
          this.log.error({ reason: statusMessage(error) }, 'worker credential refused');
        }
        if (error.code === GrpcStatus.PERMISSION_DENIED) {
          this.credentials.clear();
          this.log.error({ reason: statusMessage(error) }, 'removed from the fleet; enrol again with a new join token');
          this.emit('removed', statusMessage(error));
        }
        finish(`${GrpcStatus[error.code] ?? error.code}: ${statusMessage(error)}`);
      });
      stream.on('end', () => finish('stream closed by control plane'));
      stream.on('close', () => finish('stream closed'));

      this.send(stream, {
        case: 'hello',
        value: {
          workerName: this.options.workerName,
          agentVersion: this.options.version,
          capacity: this.options.capacity,
          supportedEngines: this.options.engines.map((engine) => ENGINES[engine]),
          labels: this.options.labels,
          instanceId: this.instanceId,
          workerId: this.workerId,
          // What still runs here after a reconnect; the control plane reconciles it.
          heldSessions: this.sessions.held(),
          credential: this.credentialForHello(),
        },
      });
    });
  }

  private onControlMessage(stream: AgentStream, message: ControlMessage): void {
    switch (message.payload.case) {
      case 'welcome': {
        const welcome = message.payload.value;
        const intervalMs = welcome.heartbeatInterval
          ? Number(welcome.heartbeatInterval.seconds) * 1000 + welcome.heartbeatInterval.nanos / 1e6
          : 2000;
        this.workerId = welcome.workerId;
        this.attempt = 0;
        if (welcome.workerCredential) this.credentials.save(welcome.workerCredential);
        this.log.info(
          { workerId: welcome.workerId, heartbeatIntervalMs: intervalMs, replicaId: welcome.replicaId },
          'connected to control plane',
        );
        this.setState('connected');
        this.emit('welcome', welcome.workerId);
        this.leaseTtlMs = welcome.leaseTtl
          ? Number(welcome.leaseTtl.seconds) * 1000 + welcome.leaseTtl.nanos / 1e6
          : 10_000;
        this.lastAckMs = this.clock.monotonicMs();
        this.startHeartbeats(stream, intervalMs);
        this.welcomedStream = stream;
        this.uplink.welcomed();
        break;
      }
      case 'heartbeatAck':
        this.onHeartbeatAck(message.payload.value.sequence);
        break;
      case 'drain':
        this.draining = true;
        this.log.warn({ reason: message.payload.value.reason }, 'draining: no new work will be placed here');
        this.acknowledge(stream, message.correlationId, { accepted: true, detail: 'draining' });
        this.emit('drain', message.payload.value.reason);
        break;
      case 'shutdown':
        this.log.warn({ reason: message.payload.value.reason }, 'shutdown requested by the control plane');
        this.acknowledge(stream, message.correlationId, { accepted: true, detail: 'stopping' });
        this.emit('shutdown', message.payload.value.reason);
        break;
      case 'assignSession': {
        const ack = (answer: CommandAckInit) => this.acknowledge(stream, message.correlationId, answer);
        if (this.leaving) {
          // The worker is about to go: a session placed here now would only move again.
          ack({ accepted: false, detail: 'UNAVAILABLE: this worker is draining' });
          break;
        }
        void this.sessions.assign(message.payload.value, ack);
        break;
      }
      case 'stopSession':
        void this.sessions.stop(message.payload.value, (answer) =>
          this.acknowledge(stream, message.correlationId, answer),
        );
        break;
      case 'logoutSession':
        void this.sessions.logout(message.payload.value, (answer) =>
          this.acknowledge(stream, message.correlationId, answer),
        );
        break;
      case 'request':
        void this.sessions.handleRequest(message.payload.value, (response) =>
          this.reply(stream, message.correlationId, { case: 'response', value: response }),
        );
        break;
      case 'dispatchMessages':
        // No answer on the correlation id: each message's outcome goes up as a session event.
        this.sessions.dispatch(message.payload.value.messages);
        break;
      case undefined:
        this.log.warn({ correlationId: message.correlationId }, 'control message without payload ignored');
        break;
      default:
        message.payload satisfies never;
    }
  }

  private startHeartbeats(stream: AgentStream, intervalMs: number): void {
    this.stopHeartbeats();
    const beat = () => {
      // Fencing: without an acknowledged heartbeat for a whole lease, the
      // control plane may already have declared this worker failed and moved
      // its work. Stop everything held before anything else happens, then
      // reconnect and re-register from scratch.
      const silentMs = this.clock.monotonicMs() - this.lastAckMs;
      if (silentMs >= this.leaseTtlMs) {
        this.fence(stream, silentMs);
        return;
      }
      this.beat(stream);
    };
    beat();
    this.heartbeatTimer = every(this.scheduler, intervalMs, beat);
  }

  private onHeartbeatAck(sequence: bigint): void {
    this.lastAckMs = this.clock.monotonicMs();
    if (sequence > this.ackedSequence) this.ackedSequence = sequence;
    for (const waiter of this.ackWaiters) {
      if (waiter.sequence > this.ackedSequence) continue;
      this.ackWaiters.delete(waiter);
      waiter.resolve();
    }
  }

  /** Sends one heartbeat now; returns its sequence. */
  private beat(stream: AgentStream): bigint {
    this.sequence += 1n;
    this.send(stream, {
      case: 'heartbeat',
      value: {
        sequence: this.sequence,
        metrics: toResourceMetrics(this.metrics.sample()),
        sentAt: timestampFromDate(this.clock.now()),
        draining: this.leaving,
      },
    });
    return this.sequence;
  }

  // Answers a command on the same correlation id, as the protocol requires.
  private acknowledge(stream: AgentStream, correlationId: string, ack: CommandAckInit): void {
    this.reply(stream, correlationId, { case: 'commandAck', value: ack });
  }

  /**
   * Answers on the stream the command or request came on: correlation ids
   * belong to one stream, so an answer is dropped if that stream has ended.
   */
  private reply(
    stream: AgentStream,
    correlationId: string,
    payload: MessageInitShape<typeof AgentMessageSchema>['payload'],
  ): void {
    this.write(stream, create(AgentMessageSchema, { correlationId, payload }));
  }

  /** Writes session events on the welcomed stream, if there is one (see SessionEventUplink). */
  private writeSessionEvents(payload: SessionEventsPayload): WriteResult {
    const stream = this.welcomedStream;
    if (!stream?.writable) return 'no stream';
    return this.send(stream, payload) ? 'sent' : 'invalid';
  }

  private fence(stream: AgentStream, silentMs: number): void {
    this.stopHeartbeats();
    // The control plane may have given every session to another worker
    // already: stop them all and say nothing more about them (see StopAllMode).
    this.welcomedStream = undefined;
    this.uplink.clear();
    void this.sessions.stopAll('fenced: lease not renewed', 'fenced');
    this.log.warn(
      { silentMs: Math.round(silentMs), leaseTtlMs: this.leaseTtlMs },
      'lease not renewed for a whole lease period: fenced (work stopped); reconnecting',
    );
    this.emit('fenced', silentMs);
    stream.cancel();
  }

  private stopHeartbeats(): void {
    this.heartbeatTimer?.cancel();
    this.heartbeatTimer = undefined;
  }

  // Correlation ids are identifiers, so crypto rather than the injected (jitter) Random.
  private send(stream: AgentStream, payload: MessageInitShape<typeof AgentMessageSchema>['payload']): boolean {
    return this.write(stream, create(AgentMessageSchema, { correlationId: randomUUID(), payload }));
  }

  /**
   * Every envelope goes up through here, checked against the rules the
   * control plane enforces. False when the check refused it (a closed stream
   * drops it silently: the caller knows the stream it chose).
   */
  private write(stream: AgentStream, message: AgentMessage): boolean {
    if (!stream.writable) return true;
    const problem = this.outboundCheck.prepare(message);
    if (problem !== undefined) {
      // Sent, it would end the stream with INVALID_ARGUMENT and cut every session off: drop this one instead.
      this.log.error(
        { kind: message.payload.case, correlationId: message.correlationId, problem },
        'envelope breaks the protocol rules; not sent',
      );
      return false;
    }
    stream.write(message);
    return true;
  }

  private credentialForHello(): MessageInitShape<typeof HelloSchema>['credential'] {
    const stored = this.credentials.load();
    this.usingStoredCredential = stored !== undefined;
    if (stored) return { case: 'workerCredential', value: stored };
    if (this.options.joinToken) return { case: 'joinToken', value: this.options.joinToken };
    this.log.error('no worker credential stored and no join token given: pass --join-token (or JOIN_TOKEN)');
    return { case: undefined };
  }

  private isStopping(): boolean {
    return this._state === 'stopping' || this._state === 'stopped';
  }

  private setState(state: AgentState): void {
    if (this._state === state) return;
    this.log.debug({ from: this._state, to: state }, 'agent state');
    this._state = state;
    this.emit('state', state);
  }
}

// grpc-js undoes the server's percent-encoding of status messages with
// decodeURI, which leaves ":" and ";" encoded (%3A, %3B); finish the job.
function statusMessage(error: StreamError): string {
  const text = error.details || error.message;
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
