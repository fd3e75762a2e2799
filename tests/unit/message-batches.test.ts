import { describe, expect, it } from 'vitest';
import type { WorkerSessionEvent } from '../../src/fleet/fleet.types.js';
import { takeRun } from '../../src/fleet/session-event-runs.js';
import { chatChanges, prepareBatch, type MessageReport } from '../../src/messaging/report-batch.js';

const at = new Date('2026-11-30T10:00:00Z');
const event = (sessionId: string, kind: 'qr' | 'messageSent' | 'messageStatus' | 'ended'): WorkerSessionEvent => ({
  sessionId,
  epoch: 1,
  occurredAt: at,
  event:
    kind === 'qr'
      ? { kind, payload: 'p', expiresAt: at, sequence: 1 }
      : kind === 'ended'
        ? { kind, reason: 'STOPPED', detail: '' }
        : kind === 'messageSent'
          ? { kind, messageId: 'm', whatsappMessageId: 'w' }
          : { kind, messageId: 'w', status: 'READ', at },
});

describe('takeRun: how a stream groups the session events it applies', () => {
  it('takes consecutive message events together and each lifecycle event alone, in order', () => {
    const queue = [
      event('a', 'messageSent'),
      event('b', 'messageStatus'),
      event('a', 'ended'),
      event('a', 'messageStatus'),
      event('c', 'qr'),
    ];
    const runs: [string, string[]][] = [];
    for (let run = takeRun(queue); run; run = takeRun(queue)) {
      runs.push([run.kind, run.events.map((e) => `${e.sessionId}:${e.event.kind}`)]);
    }
    expect(runs).toEqual([
      ['messages', ['a:messageSent', 'b:messageStatus']],
      ['lifecycle', ['a:ended']],
      ['messages', ['a:messageStatus']],
      ['lifecycle', ['c:qr']],
    ]);
  });

  it('caps a run at the batch size and leaves the rest queued', () => {
    const queue = Array.from({ length: 5 }, () => event('a', 'messageStatus'));
    expect(takeRun(queue, 3)?.events).toHaveLength(3);
    expect(queue).toHaveLength(2);
  });
});

const report = (event: MessageReport['event'], seconds: number, sessionId = 's'): MessageReport => ({
  sessionId,
  tenantId: 't',
  at: new Date(at.getTime() + seconds * 1000),
  event,
});

describe('prepareBatch: one statement per kind of change', () => {
  it('merges the receipts of a message: the furthest status, every stage reached, and the time of each', () => {
    const batch = prepareBatch(
      [
        report({ kind: 'messageStatus', messageId: 'w1', status: 'READ' }, 3),
        report({ kind: 'messageStatus', messageId: 'w1', status: 'DELIVERED' }, 2),
        report({ kind: 'messageStatus', messageId: 'w2', status: 'READ' }, 5),
        report({ kind: 'messageStatus', messageId: 'w2', status: 'PLAYED' }, 6),
      ],
      () => 'id',
    );
    const [w1, w2] = batch.receipts;
    expect(w1).toMatchObject({ status: 'READ', rank: 3, reached: ['DELIVERED', 'READ'] });
    expect(w1?.delivered_at).toBe(new Date(at.getTime() + 2000).toISOString());
    expect(w1?.read_at).toBe(new Date(at.getTime() + 3000).toISOString());
    // READ without DELIVERED: delivered no later than read; an unknown status is ignored.
    expect(w2).toMatchObject({ status: 'READ', reached: ['READ'] });
    expect(w2?.delivered_at).toBe(w2?.read_at);
  });

  it('tells retryable failures (nothing went out) from final ones', () => {
    const batch = prepareBatch(
      [
        report({ kind: 'messageFailed', messageId: 'a', code: 'UNAVAILABLE', reason: 'not connected' }, 0),
        report({ kind: 'messageFailed', messageId: 'b', code: 'INVALID_ARGUMENT', reason: 'no such number' }, 0),
      ],
      () => 'id',
    );
    expect(batch.failed.map((f) => [f.id, f.retry, f.reason])).toEqual([
      ['a', true, 'UNAVAILABLE: not connected'],
      ['b', false, 'INVALID_ARGUMENT: no such number'],
    ]);
  });
});

describe('chatChanges: unread counts and last messages in batch order', () => {
  const change = (index: number, kind: 'sent' | 'inbound', messageId: string) => ({
    index,
    kind,
    sessionId: 's',
    tenantId: 't',
    chat: '+1555',
    messageId,
    at: new Date(at.getTime() + index * 1000),
  });

  it('counts inbound after the last send; a send resets the count', () => {
    const [chat] = chatChanges([change(0, 'inbound', 'i1'), change(1, 'sent', 'o1'), change(2, 'inbound', 'i2')]);
    expect(chat).toMatchObject({ reset: true, unread: 1, last_message_id: 'i2' });
  });

  it('adds to the stored count when the session did not send', () => {
    const [chat] = chatChanges([change(1, 'inbound', 'i2'), change(0, 'inbound', 'i1')]);
    expect(chat).toMatchObject({ reset: false, unread: 2, last_message_id: 'i2' });
  });
});
