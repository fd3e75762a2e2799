import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { Code, ConnectError, createContextValues, createHandlerContext } from '@connectrpc/connect';
import { describe, expect, it } from 'vitest';
import {
  AgentMessageSchema,
  type AgentMessage,
  type ControlMessage,
  WorkerService,
} from '../../gen/switchboard/v1/worker_pb.js';
import type { CommandRouter } from '../../src/fleet/command-router.js';
import type { FleetService } from '../../src/fleet/fleet.service.js';
import type { AgentHeartbeat, WorkerSessionEvent } from '../../src/fleet/fleet.types.js';
import { WorkerConnection } from '../../src/fleet/worker-connection.js';
import type { WorkerRefusals } from '../../src/fleet/worker-refusals.js';
import { createWorkerServiceHandler, MAX_QUEUED_SESSION_EVENTS } from '../../src/fleet/worker-stream.handler.js';
import { AsyncQueue } from '../../src/platform/async-queue.js';
import { DomainError } from '../../lib/errors.js';
import { peerKey } from '../../src/transport/context.js';

/** The fleet's clock, as the handler reads it for times an agent left out. */
const RECEIVED_AT = new Date('2026-06-01T12:00:00Z');

/** How the handler ended a stream, as the fleet was told. */
interface Ending {
  disconnected?: { reason: string; outcome: string | undefined };
  protocolErrors: DomainError[];
  internalErrors: unknown[];
}

/** The fleet as the handler uses it: welcomes, acknowledges heartbeats, records command acks and how streams end. */
function fakeFleet(connection: WorkerConnection, acked: string[], ending: Ending) {
  const refusals: Pick<WorkerRefusals, 'protocolError' | 'internalError'> = {
    protocolError: (_connection, error) => void ending.protocolErrors.push(error),
    internalError: (_connection, what, error) => {
      ending.internalErrors.push(error);
      return new DomainError('INTERNAL', `failed ${what}`);
    },
  };
  const router: Pick<CommandRouter, 'commandAcknowledged' | 'responseReceived'> = {
    commandAcknowledged: (_connection, correlationId) => void acked.push(correlationId),
    responseReceived: () => undefined,
  };
  const fleet: Pick<FleetService, 'openConnection' | 'accept' | 'heartbeat' | 'disconnect' | 'now'> = {
    now: () => RECEIVED_AT,
    openConnection: () => connection,
    accept: async (conn, _hello, correlationId) => {
      conn.state = 'live';
      conn.workerId = 'worker-1';
      conn.send({
        kind: 'welcome',
        correlationId,
        workerId: 'worker-1',
        heartbeatIntervalMs: 1000,
        leaseTtlMs: 10_000,
        replicaId: 'replica-1',
        workerCredential: '',
      });
    },
    heartbeat: async (conn, heartbeat: AgentHeartbeat, correlationId) => {
      conn.send({ kind: 'heartbeatAck', correlationId, sequence: heartbeat.sequence, leaseExpiresAt: new Date() });
    },
    disconnect: async (_connection, reason, outcome) => {
      ending.disconnected = { reason, outcome };
    },
  };
  return {
    fleet: fleet as unknown as FleetService,
    router: router as unknown as CommandRouter,
    refusals: refusals as unknown as WorkerRefusals,
  };
}

const envelope = (correlationId: string, payload: MessageInitShape<typeof AgentMessageSchema>['payload']) =>
  create(AgentMessageSchema, { correlationId, payload });

const qrEvent = (n: number) =>
  envelope(`event-${n}`, {
    case: 'sessionEvent',
    value: { sessionId: `session-${n}`, epoch: 1, event: { case: 'qr', value: { payload: `qr-${n}`, sequence: 1 } } },
  });

/**
 * The handler on one stream, fed by `requests`; the first session event applied hangs until
 * `release()`, and applying one fails with `failWith` when it is set.
 */
function openStream(failWith?: Error) {
  const connection = new WorkerConnection('stream-1', '127.0.0.1:1');
  const acked: string[] = [];
  const applied: string[] = [];
  /** Each applied event's time and its QR code's expiry. */
  const stamps: { occurredAt: Date; expiresAt?: Date }[] = [];
  const ending: Ending = { protocolErrors: [], internalErrors: [] };
  let release = () => {};
  const gate = new Promise<void>((resolve) => (release = resolve));
  // Applying a session event is a database transaction; here the first one hangs until released.
  const apply = async (event: WorkerSessionEvent) => {
    if (failWith !== undefined) throw failWith;
    if (applied.length === 0) await gate;
    applied.push(event.sessionId);
    stamps.push({
      occurredAt: event.occurredAt,
      ...(event.event.kind === 'qr' ? { expiresAt: event.event.expiresAt } : {}),
    });
  };
  const handler = createWorkerServiceHandler({
    ...fakeFleet(connection, acked, ending),
    onSessionEvent: (_workerId, event: WorkerSessionEvent) => apply(event),
    onMessageEvents: async (_workerId, events) => {
      for (const event of events) await apply(event);
    },
  });
  const requests = new AsyncQueue<AgentMessage>();
  const context = createHandlerContext({
    service: WorkerService,
    method: WorkerService.method.connect,
    protocolName: 'grpc',
    requestMethod: 'POST',
    url: 'http://localhost/switchboard.v1.WorkerService/Connect',
    contextValues: createContextValues().set(peerKey, '127.0.0.1:1'),
  });
  const replies = handler.connect(requests, context)[Symbol.asyncIterator]() as AsyncIterator<ControlMessage>;
  return { requests, replies, acked, applied, stamps, ending, release: () => release() };
}

const heartbeat = (n: number) =>
  envelope(`heartbeat-${n}`, { case: 'heartbeat', value: { sequence: BigInt(n), metrics: {} } });

describe('WorkerService.Connect handler', () => {
  it('answers heartbeats and takes command acks while session events are still being applied, and applies the events in order', async () => {
    const { requests, replies, acked, applied, release } = openStream();
    requests.push(envelope('hello-1', { case: 'hello', value: { workerName: 'w', capacity: 10 } }));
    expect((await replies.next()).value?.payload.case).toBe('welcome');
    requests.push(qrEvent(1));
    requests.push(qrEvent(2));
    requests.push(heartbeat(1));
    requests.push(envelope('assign-ack-1', { case: 'commandAck', value: { accepted: true, detail: 'ok' } }));

    const ack = (await replies.next()).value;
    expect(ack?.payload.case).toBe('heartbeatAck');
    expect(ack?.correlationId).toBe('heartbeat-1');
    expect(acked).toEqual(['assign-ack-1']);
    expect(applied).toEqual([]);

    release();
    await expect.poll(() => applied).toEqual(['session-1', 'session-2']);
    requests.close();
    expect((await replies.next()).done).toBe(true);
  });

  it('stamps what an agent left untimed with the control plane clock, not the machine’s', async () => {
    const { requests, replies, stamps, release } = openStream();
    release();
    requests.push(envelope('hello-1', { case: 'hello', value: { workerName: 'w', capacity: 10 } }));
    expect((await replies.next()).value?.payload.case).toBe('welcome');
    requests.push(qrEvent(1));
    await expect.poll(() => stamps).toEqual([{ occurredAt: RECEIVED_AT, expiresAt: RECEIVED_AT }]);
    requests.close();
  });

  it('stops reading once too many session events wait, and reads on as they are applied', async () => {
    const { requests, replies, applied, release } = openStream();
    requests.push(envelope('hello-1', { case: 'hello', value: { workerName: 'w', capacity: 10 } }));
    expect((await replies.next()).value?.payload.case).toBe('welcome');
    for (let n = 1; n <= MAX_QUEUED_SESSION_EVENTS; n++) requests.push(qrEvent(n));
    requests.push(heartbeat(1));

    let answered = false;
    const next = replies.next().then((reply) => {
      answered = true;
      return reply;
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(answered).toBe(false);

    release();
    expect((await next).value?.correlationId).toBe('heartbeat-1');
    await expect.poll(() => applied.length).toBe(MAX_QUEUED_SESSION_EVENTS);
    requests.close();
  });

  /** The error the reply stream ended with (undefined: it ended cleanly, which a fault never may). */
  const endError = async (replies: AsyncIterator<ControlMessage>) => {
    for (;;) {
      try {
        if ((await replies.next()).done) return undefined;
      } catch (error) {
        return error;
      }
    }
  };
  const hello = envelope('hello-1', { case: 'hello', value: { workerName: 'w', capacity: 10 } });

  it('ends the stream with INVALID_ARGUMENT when an envelope breaks the rules, reports it, and records the violation as the reason', async () => {
    const { requests, replies, ending } = openStream();
    requests.push(hello);
    expect((await replies.next()).value?.payload.case).toBe('welcome');
    // What the validation interceptor throws from the request stream.
    const violation = DomainError.invalidArgument('heartbeat.metrics.cpu_percent', 'must be finite [double.finite]');
    requests.close(violation);
    expect(await endError(replies)).toBe(violation);
    expect(ending.protocolErrors).toEqual([violation]);
    expect(ending.disconnected).toEqual({
      reason: 'protocol error: heartbeat.metrics.cpu_percent: must be finite [double.finite]',
      outcome: 'lost',
    });
  });

  it('ends the stream with INTERNAL, never OK, when applying a session event fails (a database error)', async () => {
    const databaseError = Object.assign(new Error('insert into "session" ... - connection terminated'), {
      code: '57P01',
    });
    const { requests, replies, ending } = openStream(databaseError);
    requests.push(hello);
    expect((await replies.next()).value?.payload.case).toBe('welcome');
    requests.push(qrEvent(1));
    const error = await endError(replies);
    expect(error).toBeInstanceOf(DomainError);
    expect((error as DomainError).code).toBe('INTERNAL');
    expect(ending.internalErrors).toEqual([databaseError]);
    expect(ending.disconnected).toEqual({
      reason: 'internal error on the control plane applying a qr session event',
      outcome: 'lost',
    });
  });

  it('ends the stream with the transport’s own error when it cannot read a frame', async () => {
    const { requests, replies, ending } = openStream();
    requests.push(hello);
    expect((await replies.next()).value?.payload.case).toBe('welcome');
    const undecodable = new ConnectError('cannot decode message', Code.InvalidArgument);
    requests.close(undecodable);
    expect(await endError(replies)).toBe(undecodable);
    expect(ending.disconnected?.reason).toBe('protocol error: cannot decode message');
  });

  it('treats a connection that broke under the stream as a lost agent, with nobody left to tell', async () => {
    const { requests, replies, ending } = openStream();
    requests.push(hello);
    expect((await replies.next()).value?.payload.case).toBe('welcome');
    requests.close(Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' }));
    expect(await endError(replies)).toBeUndefined();
    expect(ending.disconnected).toEqual({ reason: 'agent connection lost', outcome: 'lost' });
    expect(ending.protocolErrors).toEqual([]);
  });
});
