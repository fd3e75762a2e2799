import { randomBytes, randomUUID } from 'node:crypto';
import { type MessageInitShape } from '@bufbuild/protobuf';
import { durationMs, timestampNow } from '@bufbuild/protobuf/wkt';
import { createClient } from '@connectrpc/connect';
import { createWritableIterable, type WritableIterable } from '@connectrpc/connect/protocol';
import { createGrpcTransport, Http2SessionManager } from '@connectrpc/connect-node';
import { AGENT_VERSION } from '../../agent/config.js';
import { Engine, type ResourceMetricsSchema } from '../../gen/switchboard/v1/fleet_pb.js';
import { type AgentMessageSchema, type ControlMessage, WorkerService } from '../../gen/switchboard/v1/worker_pb.js';
import type { LatencyRecorder } from './latency-recorder.js';

type AgentMessageInit = MessageInitShape<typeof AgentMessageSchema>;
type ResourceMetricsInit = MessageInitShape<typeof ResourceMetricsSchema>;

/**
 * Where a simulated agent is:
 * - `idle`: built, no connection yet.
 * - `connecting`: stream open, Hello sent, waiting for the Welcome.
 * - `live`: welcomed and heartbeating.
 * - `ending`: stop() half-closed the stream; waiting for the server to end it.
 * - `ended`: the server ended the stream after we asked; final.
 * - `failed`: anything else (error, unexpected end, protocol violation); final.
 */
export type SimulatedAgentState = 'idle' | 'connecting' | 'live' | 'ending' | 'ended' | 'failed';

/** Host-wide readings shared by all simulated agents, refreshed by the load generator once a second. */
export interface HostReadings {
  loadAverage: [number, number, number];
  freeMemoryBytes: number;
  totalMemoryBytes: number;
  cpuCount: number;
}

/** What a simulated agent needs from the load generator. */
export interface SimulatedAgentContext {
  target: string;
  joinToken: string;
  recorder: LatencyRecorder;
  host: () => HostReadings;
  /** Called once, the first time this agent fails; the run is then over. */
  onFailure: (agent: SimulatedAgent, error: Error) => void;
}

const CAPACITY = 100;

/**
 * One fake worker agent: its own HTTP/2 connection (own session manager, as
 * each real agent process has), one WorkerService.Connect stream, a Hello,
 * then a heartbeat per Welcome interval with plausible metrics. Every ack
 * is matched to its heartbeat by sequence number to time the round trip.
 */
export class SimulatedAgent {
  private _state: SimulatedAgentState = 'idle';
  private readonly instanceId = randomBytes(12).toString('hex');
  private readonly sessions: Http2SessionManager;
  private readonly input: WritableIterable<AgentMessageInit> = createWritableIterable<AgentMessageInit>();
  /** Heartbeats awaiting their ack: sequence -> performance.now() at send. */
  private readonly inFlight = new Map<number, number>();
  private readonly metrics: () => ResourceMetricsInit;
  private sequence = 0;
  private phaseTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private welcomed: (() => void) | undefined;
  private finished: Promise<void> = Promise.resolve();

  constructor(
    readonly workerName: string,
    private readonly context: SimulatedAgentContext,
  ) {
    this.sessions = new Http2SessionManager(context.target);
    this.metrics = createMetricsSource(context.host);
  }

  get state(): SimulatedAgentState {
    return this._state;
  }

  /** Opens the stream and says Hello; resolves on the Welcome, rejects on failure or after `timeoutMs`. */
  connect(timeoutMs: number): Promise<void> {
    if (this._state !== 'idle') throw new Error(`${this.workerName}: cannot connect from state ${this._state}`);
    this._state = 'connecting';
    const client = createClient(
      WorkerService,
      createGrpcTransport({ baseUrl: this.context.target, sessionManager: this.sessions, acceptCompression: [] }),
    );
    const welcome = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${this.workerName}: no Welcome within ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.welcomed = () => {
        clearTimeout(timer);
        resolve();
      };
      this.finished = this.read(client.connect(this.input)).catch((error: unknown) => {
        clearTimeout(timer);
        reject(error instanceof Error ? error : new Error(String(error)));
      });
    });
    this.write({
      correlationId: randomUUID(),
      payload: {
        case: 'hello',
        value: {
          workerName: this.workerName,
          agentVersion: AGENT_VERSION,
          capacity: CAPACITY,
          supportedEngines: [Engine.SANDBOX],
          labels: { zone: 'bench' },
          instanceId: this.instanceId,
          credential: { case: 'joinToken', value: this.context.joinToken },
        },
      },
    });
    return welcome;
  }

  /** Heartbeats sent before `beforeMs` (performance.now() time) and still unacknowledged. */
  overdueHeartbeats(beforeMs: number): number {
    let overdue = 0;
    for (const sentAt of this.inFlight.values()) if (sentAt < beforeMs) overdue += 1;
    return overdue;
  }

  /**
   * Half-closes the stream, as a real agent does on shutdown, and waits for
   * the server to end it. Resolves true when it ended cleanly.
   */
  async stop(): Promise<boolean> {
    this.stopHeartbeats();
    if (this._state === 'live' || this._state === 'connecting') {
      this._state = 'ending';
      this.input.close();
    }
    await this.finished.catch(() => {});
    this.sessions.abort();
    return this._state === 'ended';
  }

  private async read(responses: AsyncIterable<ControlMessage>): Promise<void> {
    try {
      for await (const message of responses) this.receive(message);
      if (this._state !== 'ending') throw new Error('stream ended by the server');
      this._state = 'ended';
    } catch (error) {
      throw this.fail(error);
    }
  }

  private receive(message: ControlMessage): void {
    switch (message.payload.case) {
      case 'welcome': {
        if (this._state !== 'connecting') throw new Error(`Welcome received in state ${this._state}`);
        const interval = message.payload.value.heartbeatInterval;
        if (!interval || message.payload.value.workerId === '')
          throw new Error('Welcome without worker id or interval');
        this._state = 'live';
        this.startHeartbeats(durationMs(interval));
        this.welcomed?.();
        break;
      }
      case 'heartbeatAck': {
        const sequence = Number(message.payload.value.sequence);
        const sentAt = this.inFlight.get(sequence);
        if (sentAt === undefined) throw new Error(`HeartbeatAck for sequence ${sequence}, which is not in flight`);
        this.inFlight.delete(sequence);
        this.context.recorder.record(performance.now() - sentAt);
        break;
      }
      case 'drain':
      case 'shutdown':
      case 'assignSession':
      case 'stopSession':
      case 'logoutSession':
      case 'request':
      case 'dispatchMessages':
        throw new Error(`unexpected ${message.payload.case} command during the benchmark`);
      case undefined:
        throw new Error('control message without payload');
      default:
        message.payload satisfies never;
    }
  }

  // Real agents start heartbeating whenever they happen to connect; a random
  // phase spreads the beats over the interval the same way instead of letting
  // the ramp's order bunch them.
  private startHeartbeats(intervalMs: number): void {
    this.phaseTimer = setTimeout(() => {
      this.beat();
      this.heartbeatTimer = setInterval(() => this.beat(), intervalMs);
    }, Math.random() * intervalMs);
  }

  private stopHeartbeats(): void {
    clearTimeout(this.phaseTimer);
    clearInterval(this.heartbeatTimer);
  }

  private beat(): void {
    if (this._state !== 'live') return;
    this.sequence += 1;
    this.inFlight.set(this.sequence, performance.now());
    this.context.recorder.sent();
    this.write({
      correlationId: randomUUID(),
      payload: {
        case: 'heartbeat',
        value: { sequence: BigInt(this.sequence), metrics: this.metrics(), sentAt: timestampNow() },
      },
    });
  }

  private write(message: AgentMessageInit): void {
    // write() settles when the transport has taken the message; only its
    // failure matters here, the ack is what we time.
    this.input.write(message).catch((error: unknown) => {
      if (this._state !== 'ending' && this._state !== 'ended') this.fail(error);
    });
  }

  private fail(error: unknown): Error {
    const failure = new Error(`${this.workerName}: ${error instanceof Error ? error.message : String(error)}`, {
      cause: error,
    });
    if (this._state === 'failed') return failure;
    const wasEnding = this._state === 'ending';
    this._state = 'failed';
    this.stopHeartbeats();
    // An error while ending is still a failure (the server should end cleanly), but report it only once.
    this.context.onFailure(this, wasEnding ? new Error(`${failure.message} (while ending)`) : failure);
    return failure;
  }
}

/**
 * Plausible, slowly varying ResourceMetrics for one worker process: every
 * field set, so messages have a real agent's size on the wire.
 */
function createMetricsSource(host: () => HostReadings): () => ResourceMetricsInit {
  const rssBase = 80e6 + Math.random() * 120e6;
  const heapTotal = rssBase * 0.6;
  const sessions = Math.floor(Math.random() * CAPACITY);
  return () => {
    const readings = host();
    const jitter = () => 0.95 + Math.random() * 0.1;
    return {
      cpuPercent: Math.round(Math.random() * 3000) / 100,
      rssBytes: BigInt(Math.round(rssBase * jitter())),
      heapUsedBytes: BigInt(Math.round(heapTotal * 0.7 * jitter())),
      heapTotalBytes: BigInt(Math.round(heapTotal)),
      loadAverage1m: readings.loadAverage[0],
      loadAverage5m: readings.loadAverage[1],
      loadAverage15m: readings.loadAverage[2],
      freeMemoryBytes: BigInt(readings.freeMemoryBytes),
      totalMemoryBytes: BigInt(readings.totalMemoryBytes),
      eventLoopLagMs: Math.round(Math.random() * 500) / 100 + 10,
      sessionCount: sessions,
      cpuCount: readings.cpuCount,
    };
  };
}
