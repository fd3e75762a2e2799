import { ConnectError, type HandlerContext, type ServiceImpl } from '@connectrpc/connect';
import { create } from '@bufbuild/protobuf';
import { durationFromMs, timestampFromDate } from '@bufbuild/protobuf/wkt';
import {
  type AgentMessage,
  type ControlMessage,
  ControlMessageSchema,
  type WorkerService,
} from '../../gen/switchboard/v1/worker_pb.js';
import { DomainError } from '../../lib/errors.js';
import { peerKey } from '../transport/context.js';
import type { CommandRouter } from './command-router.js';
import type { FleetService } from './fleet.service.js';
import type { WorkerRefusals } from './worker-refusals.js';
import type {
  AgentHello,
  ControlEnvelope,
  DispatchedMessage,
  RequestAction,
  RequestResult,
  WorkerSessionEvent,
} from './fleet.types.js';
import type { Hello, Response, SessionEvent } from '../../gen/switchboard/v1/worker_pb.js';
import { timestampDate, type Timestamp } from '@bufbuild/protobuf/wkt';
import { engineToProto } from './fleet-mapping.handler.js';
import { takeRun } from './session-event-runs.js';
import { CLEAN_CLOSE_REASON, type DisconnectOutcome, type WorkerConnection } from './worker-connection.js';
import { engineFromProto, metricsFromProto } from './fleet-mapping.handler.js';

/** Session events queued on one stream beyond which its read loop reads on only as they are applied. */
export const MAX_QUEUED_SESSION_EVENTS = 10_000;
/** Longest reason recorded for a stream's end (a worker event); violations can be many. */
const MAX_END_REASON = 500;

/** Where a stream's pieces go: the fleet, the command router, refusals, and the sessions capability. */
export interface WorkerStreamDependencies {
  fleet: FleetService;
  router: CommandRouter;
  refusals: WorkerRefusals;
  /** Where session events go (the sessions capability); refused events are its business. */
  onSessionEvent: (workerId: string, event: WorkerSessionEvent) => Promise<void>;
  /** Where consecutive message events go, as one batch (the sessions capability fences them, messaging applies them). */
  onMessageEvents: (workerId: string, events: readonly WorkerSessionEvent[]) => Promise<void>;
}

/**
 * WorkerService.Connect: decodes agent envelopes, hands them to the fleet
 * service, and encodes what the fleet sends back. Inbound and outbound run
 * concurrently: the fleet may push to the agent at any time.
 */
export function createWorkerServiceHandler(deps: WorkerStreamDependencies): ServiceImpl<typeof WorkerService> {
  return {
    async *connect(requests: AsyncIterable<AgentMessage>, ctx: HandlerContext): AsyncIterable<ControlMessage> {
      const stream = new AgentStream(deps.fleet.openConnection(ctx.values.get(peerKey)), deps, ctx.signal);
      const inbound = stream.read(requests);
      try {
        for await (const envelope of stream.connection.outbound) yield toProto(envelope);
      } finally {
        // A Hello still being processed notices the closed connection and
        // undoes its registration (FleetService.accept), so no need to wait.
        void inbound;
        await deps.fleet.disconnect(stream.connection, stream.endReason, stream.outcome);
      }
    },
  };
}

/** One agent stream's inbound side: what it reads, the order it applies session events in, and how it ends. */
class AgentStream {
  endReason = CLEAN_CLOSE_REASON;
  outcome: DisconnectOutcome = 'clean';
  private ended = false;
  // Session events are applied in the order they came, but off the read
  // loop: each is a database transaction, and a burst of them (every session
  // just placed on the worker shows a QR code, three receipts per message
  // sent) must not hold back the heartbeats, command acks and responses
  // behind it, or the agent fences itself and commands time out while the
  // worker is healthy. Consecutive message events are applied as one batch
  // (one transaction): while one batch applies, the next one gathers.
  private readonly pendingSessionEvents: WorkerSessionEvent[] = [];
  private applyingSessionEvents = false;
  private queuedSessionEvents = 0;
  private belowLimit: (() => void) | undefined;
  private sessionEventFailed = false;

  constructor(
    readonly connection: WorkerConnection,
    private readonly deps: WorkerStreamDependencies,
    private readonly signal: AbortSignal,
  ) {}

  /** Reads until the agent closes, the stream fails, or the fleet ends it. */
  read(requests: AsyncIterable<AgentMessage>): Promise<void> {
    return (async () => {
      for await (const message of requests) {
        // Only what must be awaited is: acks and responses take effect before the next message is read.
        const pending = this.dispatch(message);
        if (pending) await pending;
        if (this.connection.state === 'closing') return;
      }
    })().then(
      () => {
        // A cancelled call ends the request stream too, but the agent did not say goodbye.
        if (this.signal.aborted) this.end('agent connection lost');
        this.connection.outbound.close();
      },
      (error: unknown) => this.endWith(error),
    );
  }

  private dispatch(message: AgentMessage): Promise<void> | undefined {
    const { fleet, router } = this.deps;
    const { connection } = this;
    const { correlationId, payload } = message;
    switch (payload.case) {
      case 'hello':
        return fleet.accept(connection, helloFromProto(payload.value), correlationId);
      case 'heartbeat':
        return fleet.heartbeat(
          connection,
          {
            sequence: payload.value.sequence,
            metrics: metricsFromProto(payload.value.metrics),
            draining: payload.value.draining,
          },
          correlationId,
        );
      case 'commandAck':
        requireHello(connection.state);
        router.commandAcknowledged(connection, correlationId, payload.value.accepted, payload.value.detail);
        return undefined;
      case 'response':
        requireHello(connection.state);
        router.responseReceived(connection, correlationId, resultFromProto(payload.value, fleet.now()));
        return undefined;
      case 'sessionEvent':
        requireHello(connection.state);
        // A stream the fleet is ending (lease lost, superseded) must not change sessions any more.
        if (connection.state !== 'live') return undefined;
        this.applyInOrder(connection.workerId, sessionEventFromProto(payload.value, fleet.now()));
        return this.heldBackAtLimit();
      case 'sessionEvents': {
        requireHello(connection.state);
        if (connection.state !== 'live') return undefined;
        const receivedAt = fleet.now();
        // Converted first: one malformed event refuses the whole batch before any of it applies.
        const events = payload.value.events.map((event) => sessionEventFromProto(event, receivedAt));
        for (const event of events) this.applyInOrder(connection.workerId, event);
        return this.heldBackAtLimit();
      }
      case undefined:
        throw DomainError.invalidArgument('payload', 'envelope has no payload');
      default:
        payload satisfies never;
        return undefined;
    }
  }

  private heldBackAtLimit(): Promise<void> | undefined {
    // An agent reporting faster than its events can be applied is held
    // back by the stream's flow control rather than buffered without
    // bound: at the limit, the next message is read once one is applied.
    if (this.queuedSessionEvents < MAX_QUEUED_SESSION_EVENTS) return undefined;
    return new Promise<void>((resolve) => (this.belowLimit = resolve)).then(() => {
      this.belowLimit = undefined;
    });
  }

  private applyInOrder(workerId: string, event: WorkerSessionEvent): void {
    this.queuedSessionEvents += 1;
    this.pendingSessionEvents.push(event);
    if (!this.applyingSessionEvents) void this.applyPending(workerId);
  }

  private async applyPending(workerId: string): Promise<void> {
    this.applyingSessionEvents = true;
    for (let run = takeRun(this.pendingSessionEvents); run; run = takeRun(this.pendingSessionEvents)) {
      try {
        if (this.sessionEventFailed) continue;
        if (run.kind === 'messages') await this.deps.onMessageEvents(workerId, run.events);
        else await this.deps.onSessionEvent(workerId, run.events[0] as WorkerSessionEvent);
      } catch (error) {
        // Later events may build on this one (a QR code, then "connected"): none is applied
        // after a failure; the agent reconnects and reports what it runs.
        this.sessionEventFailed = true;
        if (error instanceof DomainError) this.endWith(error);
        else {
          const what = `applying ${run.kind === 'messages' ? `${run.events.length} message events` : `a ${run.events[0]?.event.kind} session event`}`;
          this.end(
            `internal error on the control plane ${what}`,
            this.deps.refusals.internalError(this.connection, what, error, run.events[0]),
          );
        }
      } finally {
        this.queuedSessionEvents -= run.events.length;
        if (this.queuedSessionEvents < MAX_QUEUED_SESSION_EVENTS) this.belowLimit?.();
      }
    }
    this.applyingSessionEvents = false;
  }

  /**
   * The first reason to end the stream is the one recorded; `error` is what
   * the agent sees (none: a clean end). The worker is lost either way: its
   * stream broke without a goodbye.
   */
  private end(reason: string, error?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.endReason = reason.length > MAX_END_REASON ? `${reason.slice(0, MAX_END_REASON - 1)}…` : reason;
    this.outcome = 'lost';
    this.connection.outbound.close(error);
  }

  private endWith(error: unknown): void {
    if (error instanceof DomainError) {
      if (error.code === 'INVALID_ARGUMENT') {
        // An envelope broke worker.proto's rules (validation interceptor) or the protocol.
        this.deps.refusals.protocolError(this.connection, error);
        this.end(`protocol error: ${error.message}`, error);
      } else {
        this.end(`refused: ${error.message}`, error);
      }
    } else if (this.signal.aborted || isConnectionGone(error)) {
      // The agent is gone (reset, killed): nobody is left to tell.
      this.end('agent connection lost');
    } else if (error instanceof ConnectError) {
      // Raised by the transport while reading the stream (a frame it could not decode or accept).
      this.end(`protocol error: ${error.rawMessage}`, error);
    } else {
      // Our own failure, not the agent's (the database failed, say): logged with its cause, INTERNAL for the agent.
      this.end(
        'internal error on the control plane while handling the stream',
        this.deps.refusals.internalError(this.connection, 'handling the stream', error),
      );
    }
  }
}

function helloFromProto(value: Hello): AgentHello {
  return {
    workerName: value.workerName,
    agentVersion: value.agentVersion,
    capacity: value.capacity,
    supportedEngines: value.supportedEngines.map(engineFromProto),
    labels: { ...value.labels },
    instanceId: value.instanceId,
    workerId: value.workerId,
    heldSessions: value.heldSessions.map((held) => ({ sessionId: held.sessionId, epoch: held.epoch })),
    credential:
      value.credential.case === 'joinToken'
        ? { kind: 'join-token', token: value.credential.value }
        : value.credential.case === 'workerCredential'
          ? { kind: 'worker-credential', token: value.credential.value }
          : undefined,
  };
}

function requireHello(state: WorkerConnection['state']): void {
  if (state === 'open') throw new DomainError('FAILED_PRECONDITION', 'the first message on a stream must be a hello');
}

/** Errors of a connection that broke under the stream (the agent was killed, the network dropped). */
function isConnectionGone(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return (
    code === 'ERR_STREAM_PREMATURE_CLOSE' ||
    code === 'ECONNRESET' ||
    code === 'EPIPE' ||
    code === 'ERR_HTTP2_STREAM_ERROR' ||
    code === 'ERR_HTTP2_INVALID_STREAM'
  );
}

function toProto(envelope: ControlEnvelope): ControlMessage {
  switch (envelope.kind) {
    case 'drain':
      return create(ControlMessageSchema, {
        correlationId: envelope.correlationId,
        payload: { case: 'drain', value: { reason: envelope.reason } },
      });
    case 'shutdown':
      return create(ControlMessageSchema, {
        correlationId: envelope.correlationId,
        payload: { case: 'shutdown', value: { reason: envelope.reason } },
      });
    case 'welcome':
      return create(ControlMessageSchema, {
        correlationId: envelope.correlationId,
        payload: {
          case: 'welcome',
          value: {
            workerId: envelope.workerId,
            heartbeatInterval: durationFromMs(envelope.heartbeatIntervalMs),
            leaseTtl: durationFromMs(envelope.leaseTtlMs),
            replicaId: envelope.replicaId,
            workerCredential: envelope.workerCredential,
          },
        },
      });
    case 'heartbeatAck':
      return create(ControlMessageSchema, {
        correlationId: envelope.correlationId,
        payload: {
          case: 'heartbeatAck',
          value: { sequence: envelope.sequence, leaseExpiresAt: timestampFromDate(envelope.leaseExpiresAt) },
        },
      });
    case 'assignSession':
      return create(ControlMessageSchema, {
        correlationId: envelope.correlationId,
        payload: {
          case: 'assignSession',
          value: {
            sessionId: envelope.sessionId,
            epoch: envelope.epoch,
            engine: engineToProto(envelope.engine),
            authState: envelope.authState,
          },
        },
      });
    case 'dispatchMessages':
      return create(ControlMessageSchema, {
        correlationId: envelope.correlationId,
        payload: { case: 'dispatchMessages', value: { messages: envelope.messages.map(outboundToProto) } },
      });
    case 'stopSession':
      return create(ControlMessageSchema, {
        correlationId: envelope.correlationId,
        payload: {
          case: 'stopSession',
          value: { sessionId: envelope.sessionId, epoch: envelope.epoch, reason: envelope.reason },
        },
      });
    case 'logoutSession':
      return create(ControlMessageSchema, {
        correlationId: envelope.correlationId,
        payload: { case: 'logoutSession', value: { sessionId: envelope.sessionId, epoch: envelope.epoch } },
      });
    case 'request':
      return create(ControlMessageSchema, {
        correlationId: envelope.correlationId,
        payload: {
          case: 'request',
          value: {
            sessionId: envelope.sessionId,
            epoch: envelope.epoch,
            deadline: timestampFromDate(new Date(envelope.deadline)),
            action: actionToProto(envelope.action),
          },
        },
      });
  }
}

function outboundToProto(m: DispatchedMessage) {
  return {
    sessionId: m.sessionId,
    epoch: m.epoch,
    messageId: m.messageId,
    content: { case: 'text' as const, value: { to: m.to, text: m.text } },
  };
}

function actionToProto(action: RequestAction) {
  switch (action.kind) {
    case 'sendText':
      return { case: 'sendText' as const, value: { to: action.to, text: action.text } };
    case 'requestPairingCode':
      return { case: 'requestPairingCode' as const, value: { phoneNumber: action.phoneNumber } };
    case 'sandboxScan':
      return {
        case: 'sandboxScan' as const,
        value: {
          phoneNumber: action.phoneNumber,
          pushName: action.pushName,
          qrPayload: action.qrPayload,
          pairingCode: action.pairingCode,
        },
      };
    case 'sandboxInbound':
      return { case: 'sandboxInbound' as const, value: { from: action.from, text: action.text } };
  }
}

/** `receivedAt` (the control plane's clock) stands in for a time the agent left out. */
function resultFromProto(response: Response, receivedAt: Date): RequestResult {
  const { result } = response;
  switch (result.case) {
    case 'error':
      return { kind: 'error', code: result.value.code, message: result.value.message };
    case 'messageId':
      return { kind: 'messageId', messageId: result.value };
    case 'pairingCode':
      return {
        kind: 'pairingCode',
        code: result.value.code,
        expiresAt: (result.value.expiresAt ? timestampDate(result.value.expiresAt) : receivedAt).toISOString(),
      };
    case 'done':
      return { kind: 'done' };
    case undefined:
      // Refused by worker.proto's rules before it gets here; never taken for an answer.
      throw DomainError.invalidArgument('response.result', 'the response carries no result');
  }
}

/** Times the agent left out are when the control plane received the event (`receivedAt`, its clock). */
function sessionEventFromProto(message: SessionEvent, receivedAt: Date): WorkerSessionEvent {
  const at = (t: Timestamp | undefined) => (t ? timestampDate(t) : receivedAt);
  const base = { sessionId: message.sessionId, epoch: message.epoch, occurredAt: at(message.occurredAt) };
  const { event } = message;
  switch (event.case) {
    case 'qr':
      return {
        ...base,
        event: {
          kind: 'qr',
          payload: event.value.payload,
          expiresAt: at(event.value.expiresAt),
          sequence: event.value.sequence,
        },
      };
    case 'connected':
      return {
        ...base,
        event: {
          kind: 'connected',
          jid: event.value.jid,
          phoneNumber: event.value.phoneNumber,
          pushName: event.value.pushName,
        },
      };
    case 'authCheckpoint':
      return { ...base, event: { kind: 'authCheckpoint', state: event.value.state } };
    case 'ended':
      return { ...base, event: { kind: 'ended', reason: event.value.reason, detail: event.value.detail } };
    case 'inboundMessage':
      return {
        ...base,
        event: {
          kind: 'inbound',
          messageId: event.value.messageId,
          from: event.value.from,
          text: event.value.text,
          at: at(event.value.at),
        },
      };
    case 'messageStatus':
      return {
        ...base,
        event: {
          kind: 'messageStatus',
          messageId: event.value.messageId,
          status: event.value.status,
          at: at(event.value.at),
        },
      };
    case 'messageSent':
      return {
        ...base,
        event: {
          kind: 'messageSent',
          messageId: event.value.messageId,
          whatsappMessageId: event.value.whatsappMessageId,
        },
      };
    case 'messageFailed':
      return {
        ...base,
        event: {
          kind: 'messageFailed',
          messageId: event.value.messageId,
          code: event.value.code,
          reason: event.value.reason,
        },
      };
    case undefined:
      // Refused by worker.proto's rules before it gets here; never silently skipped.
      throw DomainError.invalidArgument('session_event.event', 'the session event carries no event');
  }
}
