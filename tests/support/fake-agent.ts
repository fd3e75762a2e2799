import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { createContextValues, createHandlerContext, type ServiceImpl } from '@connectrpc/connect';
import {
  AgentMessageSchema,
  type AgentMessage,
  type ControlMessage,
  ControlMessageSchema,
  WorkerService,
} from '../../gen/switchboard/v1/worker_pb.js';
import type { Clock } from '../../lib/clock.js';
import { every, type Scheduler, type Timer } from '../../lib/timers.js';
import { AsyncQueue } from '../../src/platform/async-queue.js';
import type { SessionEventSchema } from '../../gen/switchboard/v1/worker_pb.js';
import { peerKey } from '../../src/transport/context.js';

type AgentPayload = MessageInitShape<typeof AgentMessageSchema>['payload'];
type Payload<K extends ControlMessage['payload']['case']> = Extract<ControlMessage['payload'], { case: K }>['value'];

/** Commands an agent acknowledges (requests are answered with a Response instead). */
const COMMANDS = new Set(['drain', 'shutdown', 'assignSession', 'stopSession', 'logoutSession']);

/** Who the agent says it is, kept across its reconnects like the real agent's state directory. */
export interface AgentIdentity {
  name: string;
  /** One per agent process: a reconnect of the same process may take over its own stream. */
  instanceId: string;
  labels: Record<string, string>;
  capacity: number;
  /** Set by the first Welcome; a reconnect presents them instead of the join token. */
  workerId: string;
  credential: string;
}

/**
 * An agent driven by the test, speaking worker.proto to the control plane's
 * real WorkerService.Connect handler in-process (no gRPC, no agent process):
 * the test decides what it sends and when, and its heartbeats run on the
 * fake clock. Commands are acknowledged as a sandbox agent would, unless the
 * test turns that off; requests are answered only when the test says so.
 */
export class FakeAgent {
  /** Every message the control plane sent, in order. */
  readonly received: ControlMessage[] = [];
  /** Resolves when the control plane's side of the stream ended: with its error, or undefined for a clean end. */
  readonly ended: Promise<{ error: unknown }>;
  /** Fake time (ms since the harness started) when the stream ended; undefined while it is open. */
  endedAtMs: number | undefined;
  /** Acknowledge commands (AssignSession, StopSession, Drain...) as they come. */
  acknowledgeCommands = true;
  private readonly requests = new AsyncQueue<AgentMessage>();
  private readonly context = createHandlerContext({
    service: WorkerService,
    method: WorkerService.method.connect,
    protocolName: 'grpc',
    requestMethod: 'POST',
    url: 'http://harness/switchboard.v1.WorkerService/Connect',
    contextValues: createContextValues().set(peerKey, 'harness'),
  });
  private readonly waiters = new Set<() => void>();
  /** Indexes in `received` that next() already handed out. */
  private readonly taken = new Set<number>();
  private finished = false;
  private sequence = 0n;
  private correlation = 0;
  private beat: Timer | undefined;

  constructor(
    handler: ServiceImpl<typeof WorkerService>,
    readonly identity: AgentIdentity,
    private readonly time: Clock & Scheduler,
  ) {
    const replies = handler.connect(this.requests, this.context);
    this.ended = (async () => {
      try {
        for await (const message of replies) this.receive(create(ControlMessageSchema, message));
        return { error: undefined };
      } catch (error) {
        return { error };
      } finally {
        this.endedAtMs = this.time.monotonicMs();
        this.finished = true;
        this.beat?.cancel();
        this.wake();
      }
    })();
  }

  get workerId(): string {
    return this.identity.workerId;
  }

  /** Introduces the agent: its join token on first contact, then the worker credential its Welcome gave. */
  hello(joinToken: string, held: { sessionId: string; epoch: number }[] = []): void {
    const { identity } = this;
    this.send({
      case: 'hello',
      value: {
        workerName: identity.name,
        agentVersion: 'harness-1',
        capacity: identity.capacity,
        supportedEngines: [1],
        instanceId: identity.instanceId,
        labels: identity.labels,
        workerId: identity.workerId,
        heldSessions: held,
        credential: identity.credential
          ? { case: 'workerCredential', value: identity.credential }
          : { case: 'joinToken', value: joinToken },
      },
    });
  }

  /** Waits for the Welcome and keeps the identity it gives; throws what ended the stream if it was refused. */
  async welcomed(): Promise<Payload<'welcome'>> {
    const welcome = await this.next('welcome');
    this.identity.workerId = welcome.workerId;
    this.identity.credential = welcome.workerCredential;
    return welcome;
  }

  /** Sends one heartbeat; the acknowledgement arrives in `received`. */
  heartbeat(options: { draining?: boolean } = {}): void {
    this.sequence += 1n;
    this.send({
      case: 'heartbeat',
      value: {
        sequence: this.sequence,
        metrics: { rssBytes: 50_000_000n, cpuPercent: 1.5, cpuCount: 2 },
        sentAt: timestampFromDate(this.time.now()),
        draining: options.draining ?? false,
      },
    });
  }

  /** Heartbeats every `intervalMs` of fake time until the stream ends or stopBeating(). */
  beatEvery(intervalMs: number): void {
    this.beat?.cancel();
    this.beat = every(this.time, intervalMs, () => this.heartbeat());
  }

  /** The agent hangs (its process is stuck, the connection stays open): no more heartbeats. */
  stopBeating(): void {
    this.beat?.cancel();
  }

  /** Reports that the attempt `epoch` of the session ended, as the engine saw it. */
  sessionEnded(sessionId: string, epoch: number, reason: string, detail: string): void {
    this.send({
      case: 'sessionEvent',
      value: {
        sessionId,
        epoch,
        occurredAt: timestampFromDate(this.time.now()),
        event: { case: 'ended', value: { reason, detail } },
      },
    });
  }

  /** Reports a QR code for the attempt `epoch`. */
  sessionQr(sessionId: string, epoch: number, payload = 'ref,noise,identity,adv'): void {
    this.send({
      case: 'sessionEvent',
      value: {
        sessionId,
        epoch,
        occurredAt: timestampFromDate(this.time.now()),
        event: {
          case: 'qr',
          value: { payload, expiresAt: timestampFromDate(new Date(this.time.now().getTime() + 60_000)), sequence: 1 },
        },
      },
    });
  }

  /** Reports that the session linked a phone. */
  sessionConnected(sessionId: string, epoch: number, phoneNumber: string): void {
    this.send({
      case: 'sessionEvent',
      value: {
        sessionId,
        epoch,
        occurredAt: timestampFromDate(this.time.now()),
        event: { case: 'connected', value: { jid: `${phoneNumber}@s.whatsapp.net`, phoneNumber, pushName: 'harness' } },
      },
    });
  }

  /** Reports session events in one SessionEventBatch frame, stamped now. */
  report(
    events: { sessionId: string; epoch: number; event: MessageInitShape<typeof SessionEventSchema>['event'] }[],
  ): void {
    const occurredAt = timestampFromDate(this.time.now());
    this.send({ case: 'sessionEvents', value: { events: events.map((e) => ({ ...e, occurredAt })) } });
  }

  /** Answers a request the control plane sent. */
  respond(correlationId: string, result: AgentPayload): void {
    this.send(result, correlationId);
  }

  /** The first message of kind `kind` not yet taken, waiting for it; throws what ended the stream. */
  async next<K extends ControlMessage['payload']['case'] & string>(kind: K): Promise<Payload<K>> {
    return (await this.nextMessage(kind)).payload.value as Payload<K>;
  }

  /** Like next(), with the envelope (its correlation id is what a response answers). */
  async nextMessage(kind: ControlMessage['payload']['case'] & string): Promise<ControlMessage> {
    for (;;) {
      const index = this.received.findIndex((m, i) => m.payload.case === kind && !this.taken.has(i));
      const found = this.received[index];
      if (found) {
        this.taken.add(index);
        return found;
      }
      if (this.finished) {
        const { error } = await this.ended;
        if (error instanceof Error) throw error;
        throw new Error(`the stream ended before a ${kind} came`, { cause: error });
      }
      await new Promise<void>((resolve) => this.waiters.add(resolve));
    }
  }

  /** Messages of kind `kind` received so far. */
  all<K extends ControlMessage['payload']['case'] & string>(kind: K): ControlMessage[] {
    return this.received.filter((m) => m.payload.case === kind);
  }

  /** The agent says goodbye and closes its stream (a clean stop). */
  async close(): Promise<void> {
    this.beat?.cancel();
    this.requests.close();
    await this.ended;
  }

  /** The connection breaks without a goodbye (the agent was killed, the network dropped). */
  async drop(): Promise<void> {
    this.beat?.cancel();
    this.context.abort();
    this.requests.close();
    await this.ended;
  }

  /**
   * The agent gives up on a stream nobody answers any more (its replica was
   * killed): no more heartbeats, and nothing waits for that stream to end.
   */
  abandon(): void {
    this.beat?.cancel();
  }

  private send(payload: AgentPayload, correlationId = `h-${++this.correlation}`): void {
    this.requests.push(create(AgentMessageSchema, { correlationId, payload }));
  }

  private receive(message: ControlMessage): void {
    this.received.push(message);
    if (this.acknowledgeCommands && COMMANDS.has(message.payload.case ?? '')) {
      this.send({ case: 'commandAck', value: { accepted: true, detail: 'ok' } }, message.correlationId);
    }
    this.wake();
  }

  private wake(): void {
    for (const waiter of this.waiters) waiter();
    this.waiters.clear();
  }
}
