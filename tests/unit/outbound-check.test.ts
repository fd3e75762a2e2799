import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { MetricsCollector, reading, toResourceMetrics } from '../../agent/metrics.js';
import { fit, OutboundCheck } from '../../agent/outbound-check.js';
import { AgentMessageSchema } from '../../gen/switchboard/v1/worker_pb.js';

// The agent must never send what the control plane's rules refuse: one such
// envelope would end its stream and cut every session on the worker off.

const SESSION = '3b241101-e2bb-4255-8caf-4136c566a962';
const check = new OutboundCheck();
const envelope = (payload: MessageInitShape<typeof AgentMessageSchema>['payload']) =>
  create(AgentMessageSchema, { correlationId: 'c-1', payload });

describe('what the agent sends', () => {
  it('fits free text from WhatsApp to its limit and removes NUL characters, so the event still goes up', () => {
    const message = envelope({
      case: 'sessionEvent',
      value: {
        sessionId: SESSION,
        epoch: 1,
        event: {
          case: 'inboundMessage',
          value: { messageId: 'm-1', from: '+15550001111', text: `a\u0000b${'x'.repeat(70_000)}` },
        },
      },
    });
    expect(check.prepare(message)).toBeUndefined();
    const sent = message.payload.case === 'sessionEvent' ? message.payload.value.event : undefined;
    const text = sent?.case === 'inboundMessage' ? sent.value.text : '';
    expect(text.startsWith('abx')).toBe(true);
    expect(text).toHaveLength(65_536);
  });

  it('fits a long refusal detail of a command ack', () => {
    const message = envelope({
      case: 'commandAck',
      value: { accepted: false, detail: `INTERNAL: ${'e'.repeat(5000)}` },
    });
    expect(check.prepare(message)).toBeUndefined();
    expect(message.payload.case === 'commandAck' && message.payload.value.detail).toHaveLength(1000);
  });

  it('holds back what cannot be fitted: an auth checkpoint over 3 MiB, an unknown end reason, a bad session id', () => {
    const event = (value: MessageInitShape<typeof AgentMessageSchema>['payload']) => check.prepare(envelope(value));
    expect(
      event({
        case: 'sessionEvent',
        value: {
          sessionId: SESSION,
          epoch: 1,
          event: { case: 'authCheckpoint', value: { state: new Uint8Array(3 * 1024 * 1024 + 1) } },
        },
      }),
    ).toContain('session_event.auth_checkpoint.state');
    expect(
      event({
        case: 'sessionEvent',
        value: { sessionId: SESSION, epoch: 1, event: { case: 'ended', value: { reason: 'BORED' } } },
      }),
    ).toContain('session_event.ended.reason');
    expect(
      event({
        case: 'sessionEvent',
        value: { sessionId: 'session-1', epoch: 1, event: { case: 'qr', value: { payload: 'x', sequence: 1 } } },
      }),
    ).toContain('session_event.session_id');
  });

  it('cuts by characters, not UTF-16 units', () => {
    expect(fit('😀😀😀', 2)).toBe('😀😀');
    expect(fit('😀😀', 2)).toBe('😀😀');
    expect(fit('a\u0000', 5)).toBe('a');
  });

  it('heartbeats with real metrics pass, and readings the OS could not take are 0, never NaN', () => {
    const collector = new MetricsCollector(() => 2);
    const sample = collector.sample();
    collector.close();
    expect(
      check.prepare(envelope({ case: 'heartbeat', value: { sequence: 1n, metrics: toResourceMetrics(sample) } })),
    ).toBeUndefined();
    expect(reading(Number.NaN, 100)).toBe(0);
    expect(reading(Number.POSITIVE_INFINITY, 100)).toBe(0);
    expect(reading(-3, 100)).toBe(0);
    expect(reading(250, 100)).toBe(100);
    expect(reading(1.23456, 100)).toBe(1.23);
  });
});
