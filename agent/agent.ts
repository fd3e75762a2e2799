import { randomBytes, randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { timestampNow } from '@bufbuild/protobuf/wkt';
import type { ServiceError } from '@grpc/grpc-js';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { Engine } from '../gen/switchboard/v1/fleet_pb.js';
import { AgentMessageSchema, type ControlMessage, type HelloSchema } from '../gen/switchboard/v1/worker_pb.js';
import type { Logger } from '../src/platform/logger.js';
import { backoffDelay, type BackoffPolicy } from './backoff.js';
import { ControlPlaneClient, type AgentStream } from './control-plane-client.js';
import { MetricsCollector } from './metrics.js';
import { CredentialStore } from './credential-store.js';

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
}> {
  private _state: AgentState = 'idle';
  private readonly instanceId = randomBytes(12).toString('hex');
  private readonly addresses: string[];
  private readonly clients = new Map<string, ControlPlaneClient>();
  private addressIndex = 0;
  /** Sequence of the last heartbeat the control plane acknowledged. */
  private ackedSequence = 0n;
  private readonly metrics = new MetricsCollector();
  private stream: AgentStream | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private backoffTimer: NodeJS.Timeout | undefined;
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
  private lastAckMs = 0;
  private readonly credentials: CredentialStore;

  constructor(
    readonly options: AgentOptions,
    private readonly log: Logger,
  ) {
    super();
    this.credentials = new CredentialStore(options.credentialFile);
    this.addresses = options.controlPlaneAddress.split(',').map((address) => address.trim());
  }

  /** The client for the address this attempt uses (one channel per address, kept for reuse). */
  private client(): ControlPlaneClient {
    const address = this.addresses[this.addressIndex % this.addresses.length] as string;
    let client = this.clients.get(address);
    if (!client) {
      client = new ControlPlaneClient(address, {
        keepaliveTimeMs: this.options.keepaliveTimeMs,
        keepaliveTimeoutMs: this.options.keepaliveTimeoutMs,
      });
      this.clients.set(address, client);
    }
    return client;
  }

  get state(): AgentState {
    return this._state;
  }

  start(): void {
    if (this._state !== 'idle') throw new Error(`agent cannot start from state ${this._state}`);
    this.running = this.run();
  }

  /** Ends the stream cleanly (the control plane marks the worker offline at once) and stops. */
  async stop(): Promise<void> {
    if (this._state === 'stopped') return;
    if (this._state === 'idle') {
      this.setState('stopped');
      return;
    }
    this.setState('stopping');
    this.stopHeartbeats();
    clearTimeout(this.backoffTimer);
    this.wakeBackoff?.();
    this.stream?.end();
    await this.running;
    for (const client of this.clients.values()) client.close();
    this.metrics.close();
    this.setState('stopped');
  }

  /**
   * Graceful stop (SIGTERM): tells the control plane this worker is draining
   * (no new work; what it runs moves elsewhere), waits until the control plane
   * has acknowledged that and no work is held here, or `timeoutMs` passed,
   * then ends the stream cleanly.
   */
  async drainAndStop(workHeld: () => number = () => 0): Promise<void> {
    if (this.isStopping() || this._state === 'idle') return this.stop();
    const deadline = performance.now() + this.options.drainTimeoutMs;
    this.draining = true;
    this.emit('drain', 'agent stopping');
    this.log.info({ timeoutMs: this.options.drainTimeoutMs }, 'draining before exit');
    const stream = this.stream;
    if (this._state === 'connected' && stream) {
      const sequence = this.beat(stream);
      await this.until(() => this.ackedSequence >= sequence, deadline);
    }
    const moved = await this.until(() => workHeld() === 0, deadline);
    if (!moved) this.log.warn({ held: workHeld() }, 'drain timeout: exiting with work still held');
    await this.stop();
  }

  /** Polls `done` until it holds or the deadline passes; returns whether it held. */
  private async until(done: () => boolean, deadlineMs: number): Promise<boolean> {
    while (!done()) {
      if (performance.now() >= deadlineMs || this.isStopping()) return false;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return true;
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
      const delay = backoffDelay(this.attempt++, this.options.backoff);
      this.log.warn({ reason: outcome, retryInMs: delay, attempt: this.attempt }, 'stream ended; reconnecting');
      this.setState('backoff');
      await new Promise<void>((resolve) => {
        this.wakeBackoff = resolve;
        this.backoffTimer = setTimeout(resolve, delay);
      });
    }
  }

  /** Opens one stream and holds it until it ends; returns why it ended. */
  private holdStream(): Promise<string> {
    this.setState('connecting');
    return new Promise<string>((resolve) => {
      const stream = this.client().openStream();
      this.stream = stream;
      let settled = false;
      const welcomeTimer = setTimeout(() => {
        stream.cancel();
      }, this.options.welcomeTimeoutMs);
      const finish = (reason: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(welcomeTimer);
        // The stream may end first (the control plane cut it while we were
        // frozen): the lease is just as lapsed, so fence all the same.
        const silentMs = performance.now() - this.lastAckMs;
        if (this.heartbeatTimer && silentMs >= this.leaseTtlMs) this.fence(stream, silentMs);
        this.stopHeartbeats();
        this.stream = undefined;
        resolve(reason);
      };

      stream.on('data', (message: ControlMessage) => {
        if (message.payload.case === 'welcome') clearTimeout(welcomeTimer);
        this.onControlMessage(stream, message);
      });
      stream.on('error', (error: ServiceError) => {
        if (error.code === GrpcStatus.UNAUTHENTICATED && this.usingStoredCredential) {
          // Revoked or re-enrolled elsewhere: forget it and use the join token, if there is one.
          this.credentials.clear();
          this.log.error({ reason: statusMessage(error) }, 'worker credential refused');
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
          // Sessions arrive with the sessions capability; until then nothing is held.
          heldSessions: [],
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
        this.lastAckMs = performance.now();
        this.startHeartbeats(stream, intervalMs);
        break;
      }
      case 'heartbeatAck':
        this.lastAckMs = performance.now();
        if (message.payload.value.sequence > this.ackedSequence) this.ackedSequence = message.payload.value.sequence;
        break;
      case 'drain':
        this.draining = true;
        this.log.warn({ reason: message.payload.value.reason }, 'draining: no new work will be placed here');
        this.acknowledge(stream, message.correlationId, 'draining');
        this.emit('drain', message.payload.value.reason);
        break;
      case 'shutdown':
        this.log.warn({ reason: message.payload.value.reason }, 'shutdown requested by the control plane');
        this.acknowledge(stream, message.correlationId, 'stopping');
        this.emit('shutdown', message.payload.value.reason);
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
      const silentMs = performance.now() - this.lastAckMs;
      if (silentMs >= this.leaseTtlMs) {
        this.fence(stream, silentMs);
        return;
      }
      this.beat(stream);
    };
    beat();
    this.heartbeatTimer = setInterval(beat, intervalMs);
  }

  /** Sends one heartbeat now; returns its sequence. */
  private beat(stream: AgentStream): bigint {
    this.sequence += 1n;
    this.send(stream, {
      case: 'heartbeat',
      value: {
        sequence: this.sequence,
        metrics: toResourceMetrics(this.metrics.sample()),
        sentAt: timestampNow(),
        draining: this.draining,
      },
    });
    return this.sequence;
  }

  // Answers a command on the same correlation id, as the protocol requires.
  private acknowledge(stream: AgentStream, correlationId: string, detail: string): void {
    if (stream.writable) {
      stream.write(
        create(AgentMessageSchema, {
          correlationId,
          payload: { case: 'commandAck', value: { accepted: true, detail } },
        }),
      );
    }
  }

  private fence(stream: AgentStream, silentMs: number): void {
    this.stopHeartbeats();
    this.log.warn(
      { silentMs: Math.round(silentMs), leaseTtlMs: this.leaseTtlMs },
      'lease not renewed for a whole lease period: fenced (work stopped); reconnecting',
    );
    this.emit('fenced', silentMs);
    stream.cancel();
  }

  private stopHeartbeats(): void {
    clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
  }

  private send(stream: AgentStream, payload: MessageInitShape<typeof AgentMessageSchema>['payload']): void {
    if (stream.writable) {
      stream.write(create(AgentMessageSchema, { correlationId: randomUUID(), payload }));
    }
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

function toResourceMetrics(sample: ReturnType<MetricsCollector['sample']>) {
  return {
    cpuPercent: sample.cpuPercent,
    rssBytes: BigInt(sample.rssBytes),
    heapUsedBytes: BigInt(sample.heapUsedBytes),
    heapTotalBytes: BigInt(sample.heapTotalBytes),
    loadAverage1m: sample.loadAverage[0],
    loadAverage5m: sample.loadAverage[1],
    loadAverage15m: sample.loadAverage[2],
    freeMemoryBytes: BigInt(sample.freeMemoryBytes),
    totalMemoryBytes: BigInt(sample.totalMemoryBytes),
    eventLoopLagMs: sample.eventLoopLagMs,
    sessionCount: sample.sessionCount,
    cpuCount: sample.cpuCount,
  };
}

// grpc-js undoes the server's percent-encoding of status messages with
// decodeURI, which leaves ":" and ";" encoded (%3A, %3B); finish the job.
function statusMessage(error: ServiceError): string {
  const text = error.details || error.message;
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
