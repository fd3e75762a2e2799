import { timestampDate } from '@bufbuild/protobuf/wkt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config.js';
import { COMMAND_TIMEOUT_MS } from '../../src/fleet/command-router.js';
import type { Principal } from '../../src/identity/principal.js';
import { PLACEMENT_INTERVAL_MS } from '../../src/sessions/sessions.module.js';
import { createTenant, TEST_ORIGIN } from '../support/factories.js';
import type { FakeAgent } from '../support/fake-agent.js';
import { FleetHarness } from '../support/fleet-harness.js';

/**
 * The sessions' timing rules on a fake clock (tests/support/fleet-harness.ts):
 * the backoff after failed attempts, the placement interval, the deadline of
 * an assignment and of a tenant's request. Production timings; each test has
 * its own worker, found by a label only its sessions select.
 */
describe('session timing rules', () => {
  let harness: FleetHarness;
  let config: Config;
  let owner: Principal;
  const open: FakeAgent[] = [];
  const connect = async (zone: string) => {
    const agent = await harness.replica.connect(`worker-${zone}`, { labels: { zone } });
    open.push(agent);
    return agent;
  };
  /** Creates a session for the worker in `zone` (placed at once when it has room) and lets placement run. */
  const createSession = async (zone: string) => {
    const session = await harness.replica.app.sessions.service.create(
      harness.em(),
      owner,
      { name: `session-${zone}`, engine: 'SANDBOX', labelSelector: `zone=${zone}`, affinities: [] },
      TEST_ORIGIN,
    );
    await harness.settle();
    return session.id;
  };
  /** The time, in fake milliseconds since the harness started, of a wall-clock date. */
  const fakeMs = (date: Date) => harness.nowMs + (date.getTime() - harness.time.now().getTime());

  beforeAll(async () => {
    harness = await FleetHarness.create({ env: { SESSION_QUOTA_FREE: '50' } });
    config = harness.replica.app.config;
    ({ owner } = await createTenant(harness.em()));
  });
  afterEach(async () => {
    for (const agent of open.splice(0)) if (agent.endedAtMs === undefined) await agent.close();
    await harness.settle();
  });
  afterAll(async () => {
    await harness?.close();
  });

  it('backs off before placing again a session whose attempts keep failing: 1 s doubling, equal jitter', async () => {
    const agent = await connect('flaky');
    const id = await createSession('flaky');
    let assigned = await agent.next('assignSession');
    for (const attempt of [1, 2]) {
      agent.sessionEnded(id, assigned.epoch, 'CONNECTION_LOST', 'network unreachable');
      await harness.settle();
      const failedAt = harness.time.now().getTime();
      const pending = await harness.session(id);
      expect(pending.status).toBe('PENDING');
      expect(pending.statusReason).toContain(`attempt ${attempt} failed: network unreachable`);
      // The seeded jitter puts it anywhere between half the ceiling and all of it.
      const ceiling = 1000 * 2 ** (attempt - 1);
      const backoff = (pending.placeAfter?.getTime() ?? 0) - failedAt;
      expect(backoff).toBeGreaterThanOrEqual(ceiling / 2);
      expect(backoff).toBeLessThanOrEqual(ceiling);
      const placeAfter = fakeMs(pending.placeAfter as Date);

      // A round just before the backoff ends leaves it waiting, though the worker has room...
      await harness.advanceTo(Math.ceil(placeAfter) - 1);
      await harness.replica.app.sessions.placement.placePending();
      await harness.settle();
      expect((await harness.session(id)).status).toBe('PENDING');
      expect(agent.all('assignSession')).toHaveLength(attempt);

      // ...and a round once it has ended places it again, as a new attempt.
      await harness.advanceTo(Math.ceil(placeAfter));
      await harness.replica.app.sessions.placement.placePending();
      await harness.settle();
      const next = await agent.next('assignSession');
      expect(next.epoch).toBeGreaterThan(assigned.epoch);
      expect((await harness.session(id)).status).toBe('STARTING');
      assigned = next;
    }
  });

  it('places a session whose backoff ended at the next placement interval, with nothing else asking for a round', async () => {
    const agent = await connect('interval');
    const id = await createSession('interval');
    const assigned = await agent.next('assignSession');
    agent.sessionEnded(id, assigned.epoch, 'CONNECTION_LOST', 'network unreachable');
    await harness.settle();
    const placeAfter = fakeMs((await harness.session(id)).placeAfter as Date);
    // Placement's interval timer was armed when the replica started, at fake time zero.
    const tick = Math.ceil(placeAfter / PLACEMENT_INTERVAL_MS) * PLACEMENT_INTERVAL_MS;

    await harness.advanceTo(tick - 1);
    expect((await harness.session(id)).status).toBe('PENDING');
    expect(agent.all('assignSession')).toHaveLength(1);
    await harness.advanceTo(tick);
    expect((await agent.next('assignSession')).epoch).toBeGreaterThan(assigned.epoch);
    expect((await harness.session(id)).status).toBe('STARTING');
  });

  it('puts a session whose assignment is not acknowledged in time back in the queue, as a failed attempt', async () => {
    const agent = await connect('deaf');
    agent.acknowledgeCommands = false;
    const id = await createSession('deaf');
    const sentAt = harness.nowMs;
    const assigned = await agent.next('assignSession');

    await harness.advanceTo(sentAt + COMMAND_TIMEOUT_MS - 1);
    expect((await harness.session(id)).status).toBe('STARTING');
    await harness.advanceTo(sentAt + COMMAND_TIMEOUT_MS);
    const pending = await harness.session(id);
    expect(pending.status).toBe('PENDING');
    expect(pending.failedAttempts).toBe(1);
    expect(pending.statusReason).toContain('attempt 1 failed');
    expect(pending.statusReason).toContain('the agent did not acknowledge in time');
    expect(pending.placeAfter).not.toBeNull();
    // Unanswered is not refused: the worker is told to stop the attempt in case it runs it anyway.
    const stop = await agent.next('stopSession');
    expect({ sessionId: stop.sessionId, epoch: stop.epoch }).toEqual({ sessionId: id, epoch: assigned.epoch });
  });

  describe('a tenant request to the session’s worker', () => {
    /** A session showing a QR code on the worker in `zone`, and a pairing-code request to it, not yet answered. */
    const pendingRequest = async (zone: string) => {
      const agent = await connect(zone);
      const id = await createSession(zone);
      const { epoch } = await agent.next('assignSession');
      agent.sessionQr(id, epoch);
      await harness.settle();
      expect((await harness.session(id)).status).toBe('SCAN_QR');
      let outcome: { error: unknown } | undefined;
      const asked = harness.replica.app.sessions.service
        .requestPairingCode(harness.em(), owner, id, '+15550001111')
        .then(
          () => (outcome = { error: undefined }),
          (error: unknown) => (outcome = { error }),
        );
      const request = await agent.nextMessage('request');
      return { agent, request, asked, outcome: () => outcome };
    };

    it('is UNAVAILABLE (retryable) when the worker does not answer within REQUEST_TIMEOUT_MS, and a late answer is dropped', async () => {
      const askedAt = harness.nowMs;
      const { agent, request, asked, outcome } = await pendingRequest('silent-worker');
      const deadline = request.payload.case === 'request' ? request.payload.value.deadline : undefined;
      expect(deadline && timestampDate(deadline).getTime()).toBe(
        harness.time.now().getTime() + config.requestTimeoutMs,
      );

      await harness.advanceTo(askedAt + config.requestTimeoutMs - 1);
      expect(outcome()).toBeUndefined();
      await harness.advanceTo(askedAt + config.requestTimeoutMs);
      await asked;
      expect(outcome()?.error).toMatchObject({ code: 'UNAVAILABLE', details: { retryable: true } });

      const late = harness.replica.app.fleet.router.lateResponses;
      agent.respond(request.correlationId, {
        case: 'response',
        value: { result: { case: 'pairingCode', value: { code: 'ABCD1234' } } },
      });
      await harness.settle();
      expect(harness.replica.app.fleet.router.lateResponses).toBe(late + 1);
    });

    it('is UNAVAILABLE at once, not at the deadline, when the worker disconnects meanwhile', async () => {
      const { agent, asked, outcome } = await pendingRequest('vanishing-worker');
      const askedAt = harness.nowMs;
      await agent.drop();
      await asked;
      expect(harness.nowMs).toBe(askedAt);
      expect(outcome()?.error).toMatchObject({ code: 'UNAVAILABLE' });
    });
  });
});
