import { EventEmitter } from 'node:events';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { durationFromMs } from '@bufbuild/protobuf/wkt';
import { status } from '@grpc/grpc-js';
import type {
  AgentStream,
  ControlPlaneChannel,
  ControlPlaneConnector,
  StreamError,
} from '../../agent/control-plane-client.js';
import { type AgentMessage, type ControlMessage, ControlMessageSchema } from '../../gen/switchboard/v1/worker_pb.js';
import type { ManualScheduler } from '../../lib/timers.js';

type AgentPayload = AgentMessage['payload'];
type AgentCase = NonNullable<AgentPayload['case']>;
/** The value of an agent message of one kind (`hello`, `heartbeat`, ...). */
export type SentValue<K extends AgentCase> = Extract<AgentPayload, { case: K }>['value'];
type ControlPayload = MessageInitShape<typeof ControlMessageSchema>['payload'];

/**
 * The control plane's side of the agent's connection, in memory: pass
 * `connect` as the agent's connector and each stream the agent opens shows
 * up in `streams`, for the test to play the control plane on. Timings come
 * from the test's ManualScheduler, so nothing here waits on real time.
 */
export class FakeControlPlane {
  /** Every stream the agent opened, in order. */
  readonly streams: FakeStream[] = [];
  /** Addresses whose channel the agent closed (it closes them all when it stops). */
  readonly closedChannels: string[] = [];
  private nextSeq = 0;

  constructor(private readonly time: ManualScheduler) {}

  readonly connect: ControlPlaneConnector = (address): ControlPlaneChannel => ({
    openStream: () => {
      const stream = new FakeStream(address, this.time, `c-${++this.nextSeq}`);
      this.streams.push(stream);
      return stream.agentEnd;
    },
    close: () => {
      this.closedChannels.push(address);
    },
  });

  /** The stream the agent opened last; fails the test if it opened none. */
  get latest(): FakeStream {
    const stream = this.streams.at(-1);
    if (stream === undefined) throw new Error('the agent has opened no stream');
    return stream;
  }
}

/** One message the agent wrote, with the fake-clock time it was written at. */
export interface Sent {
  at: number;
  message: AgentMessage;
}

/**
 * One WorkerService.Connect stream held in memory. The agent holds
 * `agentEnd`; the test reads what the agent wrote (`sent`, `nextOf`) and
 * answers as the control plane (`welcome`, `ack`, `send`, `fail`, `end`).
 * Like grpc-js, nothing reaches the agent from inside its own call: every
 * delivery happens on a later microtask, in order, so settle the test's
 * clock (tests/support/time.ts) before looking at the outcome.
 */
export class FakeStream {
  /** When the agent opened it, on the fake clock. */
  readonly openedAtMs: number;
  /** Everything the agent wrote, in order. */
  readonly sent: Sent[] = [];
  /** The agent cancelled the stream (welcome timeout, fencing), at this time. */
  cancelledAtMs: number | undefined;
  /** The agent half-closed the stream (it is stopping). */
  halfClosed = false;
  /** The stream is gone (either side ended it); nothing more is delivered. */
  closed = false;
  /** Acknowledge every heartbeat as it arrives, as a control plane renewing the lease does. */
  autoAck = false;
  readonly agentEnd: AgentEnd;
  private readonly waiters: (() => void)[] = [];
  private cursor = 0;
  private correlation = 0;

  constructor(
    readonly address: string,
    private readonly time: ManualScheduler,
    private readonly id: string,
  ) {
    this.openedAtMs = time.monotonicMs();
    this.agentEnd = new AgentEnd(this);
  }

  /** The agent half-closed: the control plane ends its side once the agent has said all it will. */
  onAgentEnd(): void {
    if (this.closed || this.halfClosed) return;
    this.halfClosed = true;
    this.deliver(() => this.close('end'));
  }

  /** The agent cancelled: the stream fails with CANCELLED, as grpc-js reports it. */
  onAgentCancel(): void {
    if (this.closed) return;
    this.cancelledAtMs ??= this.time.monotonicMs();
    this.deliver(() => this.close(streamError(status.CANCELLED, 'Cancelled on client')));
  }

  /** Every message of one kind the agent wrote so far, with when. */
  sentOf<K extends AgentCase>(kind: K): { at: number; value: SentValue<K> }[] {
    return this.sent.flatMap(({ at, message }) =>
      message.payload.case === kind ? [{ at, value: message.payload.value as SentValue<K> }] : [],
    );
  }

  /**
   * The next message of `kind` the agent writes (after the last one this
   * returned), waiting for it if need be; rejects if the stream closes first.
   */
  async nextOf<K extends AgentCase>(kind: K): Promise<SentValue<K>> {
    for (;;) {
      while (this.cursor < this.sent.length) {
        const { message } = this.sent[this.cursor++] as Sent;
        if (message.payload.case === kind) return message.payload.value as SentValue<K>;
      }
      if (this.closed) throw new Error(`${this.id}: stream closed before the agent sent ${kind}`);
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /** Sends a control message to the agent (with a fresh correlation id unless one is given). */
  send(payload: ControlPayload, correlationId = `${this.id}-${++this.correlation}`): void {
    const message: ControlMessage = create(ControlMessageSchema, { correlationId, payload });
    this.deliver(() => this.agentEnd.emit('data', message));
  }

  /** Welcomes the agent with these timings, as the control plane does after a good Hello. */
  welcome(timings: { heartbeatIntervalMs: number; leaseTtlMs: number }, workerId = WORKER_ID): void {
    this.send({
      case: 'welcome',
      value: {
        workerId,
        heartbeatInterval: durationFromMs(timings.heartbeatIntervalMs),
        leaseTtl: durationFromMs(timings.leaseTtlMs),
        replicaId: 'fake-replica',
      },
    });
  }

  /** Acknowledges heartbeat `sequence`: the lease was renewed. */
  ack(sequence: bigint): void {
    this.send({ case: 'heartbeatAck', value: { sequence, leaseExpiresAt: { seconds: 0n, nanos: 0 } } });
  }

  /** Ends the stream with a gRPC error, as a control plane going away does. */
  fail(code: status, details: string): void {
    this.deliver(() => this.close(streamError(code, details)));
  }

  /** Ends the stream cleanly from the control plane's side. */
  end(): void {
    this.deliver(() => this.close('end'));
  }

  onAgentWrite(message: AgentMessage): void {
    if (this.closed || this.halfClosed) throw new Error(`${this.id}: the agent wrote to a stream it may not write to`);
    this.sent.push({ at: this.time.monotonicMs(), message });
    for (const wake of this.waiters.splice(0)) wake();
    if (this.autoAck && message.payload.case === 'heartbeat') this.ack(message.payload.value.sequence);
  }

  /** Runs `event` on a later microtask, unless the stream has closed by then. */
  private deliver(event: () => void): void {
    queueMicrotask(() => {
      if (!this.closed) event();
    });
  }

  private close(how: 'end' | StreamError): void {
    if (how === 'end') this.agentEnd.emit('end');
    else this.agentEnd.emit('error', how);
    this.closed = true;
    this.agentEnd.emit('close');
    for (const wake of this.waiters.splice(0)) wake();
  }
}

/** The agent's end of a FakeStream: an event emitter, as a grpc-js call is. */
class AgentEnd extends EventEmitter implements AgentStream {
  constructor(private readonly stream: FakeStream) {
    super();
  }

  get writable(): boolean {
    return !this.stream.closed && !this.stream.halfClosed;
  }

  write(message: AgentMessage): void {
    this.stream.onAgentWrite(message);
  }

  end(): void {
    this.stream.onAgentEnd();
  }

  cancel(): void {
    this.stream.onAgentCancel();
  }
}

/** The worker id the fake control plane gives out unless told otherwise. */
export const WORKER_ID = '0b0e5a4e-3d8b-4d2a-9c53-6f6a1f4f2a10';

function streamError(code: status, details: string): StreamError {
  return Object.assign(new Error(`${code} ${status[code]}: ${details}`), { code, details });
}
