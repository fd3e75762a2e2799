import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DomainError } from '../../lib/errors.js';
import type { Principal } from '../../src/identity/principal.js';
import type { Message } from '../../src/messaging/message.entity.js';
import { createTenant, TEST_ORIGIN } from '../support/factories.js';
import type { FakeAgent } from '../support/fake-agent.js';
import { FleetHarness } from '../support/fleet-harness.js';

const DISPATCH_TIMEOUT_MS = 5000;

/**
 * The dispatcher and the batched reports on a fake clock
 * (tests/support/fleet-harness.ts): agents driven by the test answer
 * DispatchMessages frames as the test says, so redispatch, give-up,
 * back-pressure and fencing are checked without a real engine or sleeping.
 */
describe('send pipeline: dispatch, back-pressure and fenced batches', () => {
  let harness: FleetHarness;
  let owner: Principal;
  const open: FakeAgent[] = [];

  beforeAll(async () => {
    harness = await FleetHarness.create({
      env: {
        SESSION_QUOTA_FREE: '50',
        MESSAGE_DISPATCH_TIMEOUT_MS: String(DISPATCH_TIMEOUT_MS),
        MESSAGE_DISPATCH_MAX_ATTEMPTS: '2',
        MESSAGE_QUEUE_PER_SESSION: '3',
        MESSAGE_IN_FLIGHT_PER_WORKER: '4',
        // The pipeline alone here; tests/integration/send-governor-dispatch.test.ts runs it with the governor.
        SEND_GOVERNOR: 'off',
      },
    });
    ({ owner } = await createTenant(harness.em()));
  });
  afterEach(async () => {
    for (const agent of open.splice(0)) if (agent.endedAtMs === undefined) await agent.close();
    await harness.settle();
  });
  afterAll(async () => {
    await harness?.close();
  });

  /** A worker in its own zone with `count` WORKING sessions on it. */
  async function workerWithSessions(zone: string, count: number) {
    const agent = await harness.replica.connect(`worker-${zone}`, { labels: { zone } });
    open.push(agent);
    const sessions: { id: string; epoch: number }[] = [];
    for (let i = 0; i < count; i++) {
      const session = await harness.replica.app.sessions.service.create(
        harness.em(),
        owner,
        { name: `${zone}-${i}`, engine: 'SANDBOX', labelSelector: `zone=${zone}`, affinities: [] },
        TEST_ORIGIN,
      );
      await harness.settle();
      const assigned = await agent.next('assignSession');
      agent.sessionConnected(session.id, assigned.epoch, `1555000${zone.length}${i}`);
      await harness.settle();
      sessions.push({ id: session.id, epoch: assigned.epoch });
    }
    return { agent, sessions };
  }

  const send = (sessionId: string, text: string, idempotencyKey = '') =>
    harness.replica.app.messaging.service.sendText(harness.em(), owner, {
      sessionId,
      to: '+15550001234',
      text,
      idempotencyKey,
    });
  const message = (id: string) => harness.em().findOneOrFail<Message>('Message', { id });
  const refusal = async (sending: Promise<unknown>) => {
    const error = await sending.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(DomainError);
    return error as DomainError;
  };

  it('dispatches again with the same id once the confirmation is overdue, then gives up FAILED', async () => {
    const { agent, sessions } = await workerWithSessions('overdue', 1);
    const [session] = sessions as [{ id: string; epoch: number }];
    const queued = await send(session.id, 'never confirmed');
    expect(queued.status).toBe('QUEUED');
    await harness.settle();
    const first = await agent.next('dispatchMessages');
    expect(first.messages.map((m) => [m.messageId, m.sessionId, m.epoch])).toEqual([
      [queued.id, session.id, session.epoch],
    ]);

    // Just before the timeout nothing goes again; once it is over, the same message does.
    await harness.advance(DISPATCH_TIMEOUT_MS - 1);
    expect(agent.all('dispatchMessages')).toHaveLength(1);
    await harness.advance(1000);
    const second = await agent.next('dispatchMessages');
    expect(second.messages.map((m) => m.messageId)).toEqual([queued.id]);
    expect((await message(queued.id)).dispatchAttempts).toBe(2);

    // Two dispatches allowed: the next overdue one ends it FAILED, with the reason.
    await harness.advance(DISPATCH_TIMEOUT_MS + 1000);
    const failed = await message(queued.id);
    expect(failed.status).toBe('FAILED');
    expect(failed.failureReason).toContain('did not confirm the message after 2 dispatches');
    expect(agent.all('dispatchMessages')).toHaveLength(2);

    // The worker was only slow: its word that the message went out beats our giving up.
    agent.report([
      {
        sessionId: session.id,
        epoch: session.epoch,
        event: { case: 'messageSent', value: { messageId: queued.id, whatsappMessageId: '3EB0LATE' } },
      },
    ]);
    await harness.settle();
    const sent = await message(queued.id);
    expect([sent.status, sent.whatsappMessageId, sent.failureReason, sent.failedAt]).toEqual([
      'SENT',
      '3EB0LATE',
      '',
      null,
    ]);
  });

  it('dispatches what the old worker never confirmed to the new one when the session moves, same id, new epoch', async () => {
    const { agent: first, sessions } = await workerWithSessions('moving', 1);
    const [session] = sessions as [{ id: string; epoch: number }];
    const queued = await send(session.id, 'survives the move');
    await harness.settle();
    expect((await first.next('dispatchMessages')).messages.map((m) => m.messageId)).toEqual([queued.id]);

    const second = await harness.replica.connect('worker-moving-2', { labels: { zone: 'moving' } });
    open.push(second);
    await first.drop();
    // Lost, then FAILED after the grace: the session is placed on the other worker under a new epoch.
    await harness.advance(harness.replica.app.config.failureGraceMs + harness.replica.app.config.sweepIntervalMs * 2);
    const assigned = await second.next('assignSession');
    expect(assigned.epoch).toBeGreaterThan(session.epoch);
    second.sessionConnected(session.id, assigned.epoch, '15550009876');
    await harness.settle();
    const again = await second.next('dispatchMessages');
    expect(again.messages.map((m) => [m.messageId, m.epoch])).toEqual([[queued.id, assigned.epoch]]);
  });

  it('refuses with RESOURCE_EXHAUSTED and retry-after when the queue of the session or its worker is full', async () => {
    const { sessions } = await workerWithSessions('pressure', 2);
    const [a, b] = sessions as [{ id: string; epoch: number }, { id: string; epoch: number }];
    for (let i = 0; i < 3; i++) await send(a.id, `a${i}`);
    await harness.settle();
    const full = await refusal(send(a.id, 'one too many'));
    expect(full.code).toBe('RESOURCE_EXHAUSTED');
    expect(full.details['retry-after']).toBeGreaterThan(0);

    // Session b has room, but the worker has 3 + 2 unconfirmed, more than its 4.
    await send(b.id, 'b0');
    await send(b.id, 'b1');
    await harness.settle();
    const saturated = await refusal(send(b.id, 'b2'));
    expect(saturated.code).toBe('RESOURCE_EXHAUSTED');
    expect(saturated.message).toContain('worker');
  });

  it('applies a batch whose events for one session are stale, refusing only those', async () => {
    const { agent, sessions } = await workerWithSessions('fenced', 2);
    const [live, moved] = sessions as [{ id: string; epoch: number }, { id: string; epoch: number }];
    const ok = await send(live.id, 'to be confirmed');
    const stale = await send(moved.id, 'confirmed too late');
    await harness.settle();
    // The second session's attempt ends (restart): its epoch moves on.
    await harness.replica.app.sessions.service.command(harness.em(), owner, moved.id, { kind: 'restart' }, TEST_ORIGIN);
    await harness.settle();
    const staleBefore = harness.replica.app.sessions.reports.staleEvents;
    agent.report([
      {
        sessionId: moved.id,
        epoch: moved.epoch,
        event: { case: 'messageSent', value: { messageId: stale.id, whatsappMessageId: '3EB0STALE' } },
      },
      {
        sessionId: live.id,
        epoch: live.epoch,
        event: { case: 'messageSent', value: { messageId: ok.id, whatsappMessageId: '3EB0LIVE' } },
      },
      {
        sessionId: live.id,
        epoch: live.epoch,
        event: { case: 'messageStatus', value: { messageId: '3EB0LIVE', status: 'DELIVERED' } },
      },
    ]);
    await harness.settle();
    expect(harness.replica.app.sessions.reports.staleEvents).toBe(staleBefore + 1);
    expect((await message(stale.id)).status).toBe('QUEUED');
    const applied = await message(ok.id);
    expect(applied.status).toBe('DELIVERED');
    expect(applied.whatsappMessageId).toBe('3EB0LIVE');
    expect(applied.deliveredAt).not.toBeNull();
  });
});
