import { timestampDate } from '@bufbuild/protobuf/wkt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config.js';
import type { AgentIdentity, FakeAgent } from '../support/fake-agent.js';
import { TEST_ORIGIN } from '../support/factories.js';
import { FleetHarness } from '../support/fleet-harness.js';

/**
 * The fleet's timing rules on a fake clock (see tests/support/fleet-harness.ts):
 * failure grace, lease expiry and the connection age limit, each checked to
 * the millisecond of fake time, with production timings except a shorter
 * connection age.
 */
describe('fleet timing rules', () => {
  let harness: FleetHarness;
  let config: Config;
  const open: FakeAgent[] = [];
  const connect = async (name: string) => {
    const agent = await harness.replica.connect(name);
    open.push(agent);
    return agent;
  };
  /** Halfway between two sweeps, so that what a sweep would do and what the rule under test does never coincide. */
  const betweenSweeps = async () => {
    const sweep = config.sweepIntervalMs;
    await harness.advanceTo(Math.ceil(harness.nowMs / sweep) * sweep + sweep / 2);
  };

  beforeAll(async () => {
    harness = await FleetHarness.create({ env: { MAX_CONNECTION_AGE_MS: '20000' } });
    config = harness.replica.app.config;
    // Past the sweeper's first full lease: from here on a sweep could fail workers too.
    await harness.advance(config.leaseTtlMs + config.sweepIntervalMs);
  });
  afterEach(async () => {
    for (const agent of open.splice(0)) if (agent.endedAtMs === undefined) await agent.close();
    await harness.settle();
  });
  afterAll(async () => {
    await harness?.close();
  });

  it('declares a lost worker FAILED when the failure grace ends: not before, and not a sweep later', async () => {
    const grace = config.failureGraceMs;
    const agent = await connect('grace-runs-out');
    await betweenSweeps();
    const lostAt = harness.nowMs;
    const lostAtWall = harness.time.now().getTime();
    await agent.drop();
    await harness.settle();
    const offline = await harness.worker(agent.workerId);
    expect(offline.status).toBe('OFFLINE');
    expect(offline.statusReason).toBe('agent connection lost');
    expect(offline.failAfter?.getTime()).toBe(lostAtWall + grace);

    await harness.advanceTo(lostAt + grace - 1);
    expect((await harness.worker(agent.workerId)).status).toBe('OFFLINE');

    // The grace timer (5 ms of margin for real timers that fire early), well before the next sweep.
    await harness.advanceTo(lostAt + grace + 5);
    const failed = await harness.worker(agent.workerId);
    expect(failed.status).toBe('FAILED');
    expect(failed.statusReason).toContain('not back within the failure grace');
    const failures = (await harness.events(agent.workerId)).filter((e) => e.kind === 'FAILED');
    expect(failures).toHaveLength(1);
    const failedAfter = (failures[0]?.occurredAt.getTime() ?? 0) - lostAtWall;
    expect(failedAfter).toBeGreaterThanOrEqual(grace);
    expect(failedAfter).toBeLessThan(grace + config.sweepIntervalMs / 2);
  });

  it('keeps a worker whose agent comes back within the grace', async () => {
    const grace = config.failureGraceMs;
    const agent = await connect('grace-back');
    await betweenSweeps();
    const lostAt = harness.nowMs;
    await agent.drop();
    await harness.advanceTo(lostAt + grace - 1);
    const back = await harness.replica.connect(agent.identity);
    open.push(back);
    expect(back.workerId).toBe(agent.workerId);

    await harness.advanceTo(lostAt + grace + 5 * config.sweepIntervalMs);
    const worker = await harness.worker(agent.workerId);
    expect(worker.status).toBe('ONLINE');
    expect(worker.failAfter).toBeNull();
    expect((await harness.events(agent.workerId)).map((e) => e.kind)).toEqual(['ONLINE', 'OFFLINE', 'ONLINE']);
  });

  it('ends a stream whose heartbeats stopped (connection still open) and fails its worker at the lease TTL, within one sweep', async () => {
    const lease = config.leaseTtlMs;
    const agent = await connect('silent');
    agent.stopBeating();
    await betweenSweeps();
    agent.heartbeat(); // the last one
    await harness.settle();
    const silentSince = harness.nowMs;
    const ack = agent.all('heartbeatAck').at(-1);
    const promised = ack?.payload.case === 'heartbeatAck' ? ack.payload.value.leaseExpiresAt : undefined;
    expect(promised && timestampDate(promised).getTime()).toBe(harness.time.now().getTime() + lease);

    await harness.advanceTo(silentSince + lease - 1);
    expect(agent.endedAtMs).toBeUndefined();
    expect((await harness.worker(agent.workerId)).status).toBe('ONLINE');

    await harness.advanceTo(silentSince + lease + config.sweepIntervalMs);
    const { error } = await agent.ended;
    expect(error).toMatchObject({ code: 'DEADLINE_EXCEEDED' });
    const endedAfter = (agent.endedAtMs ?? 0) - silentSince;
    expect(endedAfter).toBeGreaterThanOrEqual(lease);
    expect(endedAfter).toBeLessThan(lease + config.sweepIntervalMs);
    const worker = await harness.worker(agent.workerId);
    expect(worker.status).toBe('FAILED');
    expect(worker.statusReason).toContain('lease expired');
  });

  it('refuses a join token once its time to live is over, not before', async () => {
    const ttlMs = 5000;
    const { token } = await harness.replica.app.identity.joinTokens.create(
      harness.em(),
      undefined,
      { description: 'short-lived', ttlMs, maxUses: 10 },
      TEST_ORIGIN,
    );
    const createdAt = harness.nowMs;
    await harness.advanceTo(createdAt + ttlMs - 1);
    open.push(await harness.replica.connect('token-in-time', { joinToken: token }));
    await harness.advanceTo(createdAt + ttlMs);
    await expect(harness.replica.connect('token-too-late', { joinToken: token })).rejects.toMatchObject({
      code: 'UNAUTHENTICATED',
    });
  });

  // The age is jittered ±10% (0.9 + random × 0.2) so agents that connected together leave apart.
  it.each([
    { random: 0, factor: 0.9 },
    { random: 0.5, factor: 1 },
    { random: 0.9999, factor: 1.09998 },
  ])(
    'ends streams at the maximum connection age × $factor (random $random) so agents rebalance, without the worker going offline',
    async ({ random, factor }) => {
      const seeded = harness.random;
      harness.random = () => random;
      try {
        let identity: AgentIdentity | string = `aged-${String(random).replace('.', '-')}`;
        let workerId = '';
        // Sent away and back twice, as the real agent reconnects at once.
        for (let round = 0; round < 2; round += 1) {
          await betweenSweeps();
          const current = await harness.replica.connect(identity);
          open.push(current);
          const connectedAt = harness.nowMs;
          if (round > 0) expect(current.workerId).toBe(workerId);
          ({ identity } = current);
          workerId = current.workerId;
          const endAt = connectedAt + config.maxConnectionAgeMs * factor;
          await harness.advanceTo(Math.ceil(endAt) - 1);
          expect(current.endedAtMs).toBeUndefined();
          await harness.advanceTo(endAt + config.sweepIntervalMs);
          const { error } = await current.ended;
          expect(error).toMatchObject({ code: 'UNAVAILABLE' });
          expect(String(error)).toContain('connection age limit');
          expect(current.endedAtMs).toBeGreaterThanOrEqual(endAt);
          expect(current.endedAtMs).toBeLessThan(endAt + config.sweepIntervalMs);
          expect((await harness.worker(workerId)).status).toBe('ONLINE');
        }
        const back = await harness.replica.connect(identity);
        open.push(back);
        expect(back.workerId).toBe(workerId);
        expect((await harness.worker(workerId)).status).toBe('ONLINE');
        expect((await harness.events(workerId)).map((e) => e.kind).filter((k) => k !== 'ONLINE')).toEqual([]);
      } finally {
        harness.random = seeded;
      }
    },
  );
});
