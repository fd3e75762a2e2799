import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { timestampNow } from '@bufbuild/protobuf/wkt';
import { createValidator } from '@bufbuild/protovalidate';
import { describe, expect, it } from 'vitest';
import { AgentMessageSchema, SessionEventSchema } from '../../gen/switchboard/v1/worker_pb.js';

// The rules in worker.proto (and ResourceMetrics in fleet.proto) are what the
// control plane checks on every envelope a worker sends; these cases pin them.

type Payload = MessageInitShape<typeof AgentMessageSchema>['payload'];

const SESSION = '3b241101-e2bb-4255-8caf-4136c566a962';
const validator = createValidator();

/** The field paths a validator names for the envelope; empty when it is valid. */
function violations(payload: Payload, correlationId = 'c-1'): string[] {
  const result = validator.validate(AgentMessageSchema, create(AgentMessageSchema, { correlationId, payload }));
  if (result.kind === 'error') throw result.error;
  if (result.kind === 'valid') return [];
  return result.violations.map((v) => v.toString().split(':')[0] ?? '');
}

const hello = (change: Record<string, unknown> = {}): Payload => ({
  case: 'hello',
  value: {
    workerName: 'worker-1',
    agentVersion: '1.0.0',
    capacity: 10,
    supportedEngines: [1],
    labels: { region: 'eu', 'topology.kubernetes.io/zone': 'eu-1a' },
    instanceId: '0123456789abcdef',
    credential: { case: 'joinToken', value: 'sbj_x' },
    heldSessions: [{ sessionId: SESSION, epoch: 3 }],
    ...change,
  },
});

const metrics = {
  cpuPercent: 12.5,
  rssBytes: 50_000_000n,
  loadAverage1m: 0.4,
  loadAverage5m: 0.3,
  loadAverage15m: 0.2,
  eventLoopLagMs: 1.2,
  sessionCount: 3,
  cpuCount: 8,
};
const heartbeat = (change: Record<string, number> = {}): Payload => ({
  case: 'heartbeat',
  value: { sequence: 1n, metrics: { ...metrics, ...change }, sentAt: timestampNow() },
});

type SessionEventInit = Extract<MessageInitShape<typeof SessionEventSchema>, { sessionId?: string }>;
const sessionEvent = (change: Pick<SessionEventInit, 'sessionId' | 'epoch' | 'event'> = {}): Payload => ({
  case: 'sessionEvent',
  value: create(SessionEventSchema, {
    sessionId: SESSION,
    epoch: 1,
    occurredAt: timestampNow(),
    event: { case: 'qr', value: { payload: 'ref,key,identity,adv', sequence: 1 } },
    ...change,
  }),
});

describe('worker.proto rules', () => {
  it.each<[string, Payload]>([
    ['hello', hello()],
    [
      'hello with a worker id and a worker credential',
      hello({ workerId: SESSION, credential: { case: 'workerCredential', value: 'ey.x.y' } }),
    ],
    ['hello without a credential (refused later, as UNAUTHENTICATED)', hello({ credential: { case: undefined } })],
    ['heartbeat', heartbeat()],
    ['heartbeat of an idle host (all zero)', heartbeat({ cpuPercent: 0, loadAverage1m: 0, eventLoopLagMs: 0 })],
    ['command ack', { case: 'commandAck', value: { accepted: false, detail: 'NOT_FOUND: not held here' } }],
    ['response', { case: 'response', value: { result: { case: 'messageId', value: 'ABCDEF0123' } } }],
    [
      'error response',
      { case: 'response', value: { result: { case: 'error', value: { code: 'NOT_FOUND', message: 'gone' } } } },
    ],
    ['qr event', sessionEvent()],
    [
      'connected event without a known phone number',
      sessionEvent({ event: { case: 'connected', value: { jid: '1@s.whatsapp.net', phoneNumber: '', pushName: '' } } }),
    ],
    ['auth checkpoint', sessionEvent({ event: { case: 'authCheckpoint', value: { state: new Uint8Array(1024) } } })],
    ['ended event', sessionEvent({ event: { case: 'ended', value: { reason: 'QR_TIMEOUT', detail: '' } } })],
    [
      'inbound message',
      sessionEvent({ event: { case: 'inboundMessage', value: { messageId: 'm1', from: '+15550001111', text: 'hi' } } }),
    ],
    ['message status', sessionEvent({ event: { case: 'messageStatus', value: { messageId: 'm1', status: 'READ' } } })],
  ])('accepts a valid %s', (_name, payload) => {
    expect(violations(payload)).toEqual([]);
  });

  it.each<[string, Payload, string?]>([
    ['payload', { case: undefined }],
    ['correlation_id', heartbeat(), ''],
    ['correlation_id', heartbeat(), 'x'.repeat(129)],
    ['hello.worker_name', hello({ workerName: 'Upper' })],
    ['hello.worker_name', hello({ workerName: '' })],
    ['hello.worker_name', hello({ workerName: '-leading' })],
    ['hello.agent_version', hello({ agentVersion: '' })],
    ['hello.capacity', hello({ capacity: 0 })],
    ['hello.capacity', hello({ capacity: 100_001 })],
    ['hello.supported_engines', hello({ supportedEngines: [] })],
    ['hello.supported_engines[0]', hello({ supportedEngines: [0] })],
    ['hello.supported_engines[0]', hello({ supportedEngines: [7] })],
    ['hello.instance_id', hello({ instanceId: 'short' })],
    ['hello.worker_id', hello({ workerId: 'not-a-uuid' })],
    ['hello.labels["Bad Key"]', hello({ labels: { 'Bad Key': 'x' } })],
    ['hello.labels["zone"]', hello({ labels: { zone: 'x'.repeat(64) } })],
    ['hello.labels', hello({ labels: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, 'v'])) })],
    ['hello.join_token', hello({ credential: { case: 'joinToken', value: 'x'.repeat(257) } })],
    ['hello.held_sessions[0].session_id', hello({ heldSessions: [{ sessionId: 'nope', epoch: 1 }] })],
    ['hello.held_sessions[0].epoch', hello({ heldSessions: [{ sessionId: SESSION, epoch: 0 }] })],
    [
      'hello.held_sessions',
      hello({
        heldSessions: [
          { sessionId: SESSION, epoch: 1 },
          { sessionId: SESSION, epoch: 2 },
        ],
      }),
    ],
    [
      'hello',
      hello({
        capacity: 1,
        heldSessions: [
          { sessionId: SESSION, epoch: 1 },
          { sessionId: '00000000-0000-4000-8000-000000000000', epoch: 1 },
        ],
      }),
    ],
    ['heartbeat.sequence', { case: 'heartbeat', value: { sequence: 0n, metrics } }],
    ['heartbeat.metrics', { case: 'heartbeat', value: { sequence: 1n } }],
    ['heartbeat.metrics.cpu_percent', heartbeat({ cpuPercent: Number.NaN })],
    ['heartbeat.metrics.cpu_percent', heartbeat({ cpuPercent: Number.POSITIVE_INFINITY })],
    ['heartbeat.metrics.cpu_percent', heartbeat({ cpuPercent: -1 })],
    ['heartbeat.metrics.load_average_1m', heartbeat({ loadAverage1m: Number.NaN })],
    ['heartbeat.metrics.load_average_5m', heartbeat({ loadAverage5m: Number.NEGATIVE_INFINITY })],
    ['heartbeat.metrics.load_average_15m', heartbeat({ loadAverage15m: -0.5 })],
    ['heartbeat.metrics.event_loop_lag_ms', heartbeat({ eventLoopLagMs: Number.NaN })],
    ['heartbeat.metrics.event_loop_lag_ms', heartbeat({ eventLoopLagMs: 1e300 })],
    ['heartbeat.metrics.session_count', heartbeat({ sessionCount: 4_000_000_000 })],
    ['command_ack.detail', { case: 'commandAck', value: { accepted: true, detail: 'x'.repeat(1001) } }],
    ['response.result', { case: 'response', value: {} }],
    ['response.message_id', { case: 'response', value: { result: { case: 'messageId', value: '' } } }],
    ['response.error.code', { case: 'response', value: { result: { case: 'error', value: { code: 'OK' } } } }],
    ['session_event.session_id', sessionEvent({ sessionId: "x'; drop table session; --" })],
    ['session_event.session_id', sessionEvent({ sessionId: '' })],
    ['session_event.epoch', sessionEvent({ epoch: 0 })],
    ['session_event.epoch', sessionEvent({ epoch: 2 ** 31 })],
    ['session_event.event', sessionEvent({ event: { case: undefined } })],
    ['session_event.qr.payload', sessionEvent({ event: { case: 'qr', value: { payload: '', sequence: 1 } } })],
    [
      'session_event.qr.payload',
      sessionEvent({ event: { case: 'qr', value: { payload: 'x'.repeat(2001), sequence: 1 } } }),
    ],
    ['session_event.qr.sequence', sessionEvent({ event: { case: 'qr', value: { payload: 'x', sequence: 0 } } })],
    ['session_event.qr.sequence', sessionEvent({ event: { case: 'qr', value: { payload: 'x', sequence: 2 ** 31 } } })],
    [
      'session_event.connected.push_name',
      sessionEvent({ event: { case: 'connected', value: { jid: 'j', pushName: 'x'.repeat(257) } } }),
    ],
    [
      'session_event.auth_checkpoint.state',
      sessionEvent({ event: { case: 'authCheckpoint', value: { state: new Uint8Array(0) } } }),
    ],
    [
      'session_event.auth_checkpoint.state',
      sessionEvent({ event: { case: 'authCheckpoint', value: { state: new Uint8Array(3 * 1024 * 1024 + 1) } } }),
    ],
    ['session_event.ended.reason', sessionEvent({ event: { case: 'ended', value: { reason: 'BORED' } } })],
    [
      'session_event.ended.detail',
      sessionEvent({ event: { case: 'ended', value: { reason: 'STOPPED', detail: 'x'.repeat(1001) } } }),
    ],
    [
      'session_event.inbound_message.text',
      sessionEvent({
        event: { case: 'inboundMessage', value: { messageId: 'm', from: 'f', text: 'x'.repeat(65_537) } },
      }),
    ],
    [
      'session_event.inbound_message.from',
      sessionEvent({ event: { case: 'inboundMessage', value: { messageId: 'm', from: '', text: 'x' } } }),
    ],
    [
      'session_event.message_status.status',
      sessionEvent({ event: { case: 'messageStatus', value: { messageId: 'm', status: 'LOST' } } }),
    ],
    [
      'session_event.message_status.message_id',
      sessionEvent({ event: { case: 'messageStatus', value: { messageId: 'x'.repeat(257), status: 'SENT' } } }),
    ],
  ])('refuses a bad %s', (field, payload, correlationId) => {
    expect(violations(payload, correlationId)).toContain(field);
  });
});
