import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Principal } from '../../src/identity/principal.js';
import type { Message } from '../../src/messaging/message.entity.js';
import { createTenant, TEST_ORIGIN } from '../support/factories.js';
import { FleetHarness } from '../support/fleet-harness.js';

/**
 * The send governor in the real pipeline, on a fake clock: the dispatcher
 * asks it before each DispatchMessages frame, and what it holds stays
 * QUEUED with held_until and the reason until its time comes.
 */
describe('send governor in the dispatch path', () => {
  let harness: FleetHarness;
  let owner: Principal;

  beforeAll(async () => {
    harness = await FleetHarness.create({
      env: {
        SEND_GOVERNOR: 'on',
        // Jitter under 1 ms, so the schedule is exact: 3 at once to a new contact, then one per 6 s.
        SEND_POLICY_PLANS: JSON.stringify({ free: { defaults: { jitterMs: 1 }, limits: { jitterMs: 1 } } }),
      },
    });
    ({ owner } = await createTenant(harness.em()));
  });
  afterAll(async () => {
    await harness?.close();
  });

  it('holds a burst to one new recipient, shows why, and releases it on schedule in order', async () => {
    const agent = await harness.replica.connect('worker-governed', { labels: { zone: 'governed' } });
    const session = await harness.replica.app.sessions.service.create(
      harness.em(),
      owner,
      { name: 'governed', engine: 'SANDBOX', labelSelector: 'zone=governed', affinities: [] },
      TEST_ORIGIN,
    );
    await harness.settle();
    const assigned = await agent.next('assignSession');
    agent.sessionConnected(session.id, assigned.epoch, '15550007777');
    await harness.settle();

    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const queued = await harness.replica.app.messaging.service.sendText(harness.em(), owner, {
        sessionId: session.id,
        to: '+15550001111',
        text: `burst ${i}`,
        idempotencyKey: '',
      });
      ids.push(queued.id);
    }
    await harness.settle();
    const dispatched = () =>
      agent
        .all('dispatchMessages')
        .flatMap(({ payload }) =>
          payload.case === 'dispatchMessages' ? payload.value.messages.map((m) => m.messageId) : [],
        );
    expect(dispatched()).toEqual(ids.slice(0, 3));

    const message = (id: string) => harness.em().findOneOrFail<Message>('Message', { id });
    const fourth = await message(ids[3] as string);
    const fifth = await message(ids[4] as string);
    expect([fourth.status, fifth.status]).toEqual(['QUEUED', 'QUEUED']);
    const start = harness.time.now().getTime();
    expect(fourth.heldUntil?.getTime()).toBeGreaterThanOrEqual(start + 6000);
    expect(fourth.heldUntil?.getTime()).toBeLessThanOrEqual(start + 6002);
    expect(fourth.heldReason).toContain('new contact');
    // The fifth waits behind the held fourth (order per chat) until the fourth may go.
    expect(fifth.heldUntil).toBeNull();

    await harness.advance(5999);
    expect(dispatched()).toEqual(ids.slice(0, 3));
    await harness.advance(3);
    await harness.settle();
    expect(dispatched()).toEqual(ids.slice(0, 4));
    const fifthHeld = await message(ids[4] as string);
    expect(fifthHeld.heldUntil?.getTime()).toBeGreaterThanOrEqual(start + 12_000);
    expect(fifthHeld.heldUntil?.getTime()).toBeLessThanOrEqual(start + 12_004);
    await harness.advance(6000);
    await harness.settle();
    expect(dispatched()).toEqual(ids);
    await agent.close();
  });
});
