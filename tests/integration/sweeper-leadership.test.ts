import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../lib/logger.js';
import type { Config } from '../../src/config.js';
import { PlatformSetting } from '../../src/fleet/platform-setting.entity.js';
import { Worker } from '../../src/fleet/worker.entity.js';
import { createStrandedWorker } from '../support/factories.js';
import { FleetHarness, type HarnessReplica } from '../support/fleet-harness.js';
import { captureLogs } from '../support/logs.js';

/**
 * The fleet-wide sweeper's leadership between two replicas sharing one
 * database and one coordination store, on a fake clock: one leader at a
 * time, a new leader's wait of one full lease, and the fencing that refuses
 * a deposed leader's writes (docs/fencing.md).
 */
describe('the sweeper role between two replicas', () => {
  let harness: FleetHarness;
  let config: Config;
  const logsOfA = captureLogs('info');
  const leaders = () => harness.replicas.filter((r) => r.app.fleet.service.isSweepLeader).map((r) => r.id);
  const term = async () => {
    const row = await harness.em().findOne(PlatformSetting, { key: 'fleet.sweeper_term' });
    return row?.value as { term: number; holder: string } | undefined;
  };
  /** Sweeps until `replica` holds the role; returns when it took it. */
  const untilLeader = async (replica: HarnessReplica) => {
    for (let sweeps = 0; !replica.app.fleet.service.isSweepLeader; sweeps += 1) {
      if (sweeps > 100) throw new Error(`${replica.id} never took the sweeper role`);
      await harness.advance(config.sweepIntervalMs);
    }
    return harness.nowMs;
  };

  beforeAll(async () => {
    harness = await FleetHarness.create({
      replicas: ['replica-a', 'replica-b'],
      logger: (id) => (id === 'replica-a' ? logsOfA.logger : createLogger({ level: 'silent', pretty: false })),
    });
    config = harness.replica.app.config;
  });
  afterAll(async () => {
    await harness?.close();
  });

  it('goes to one replica, which keeps it by renewing it every sweep', async () => {
    for (let sweep = 0; sweep < (3 * config.sweeperLeadershipTtlMs) / config.sweepIntervalMs; sweep += 1) {
      await harness.advance(config.sweepIntervalMs);
      expect(leaders()).toEqual(['replica-a']);
    }
    expect(await term()).toEqual({ term: 1, holder: 'replica-a' });
  });

  it('refuses the writes of a leader paused mid-sweep once another replica claimed a newer term', async () => {
    const [a, b] = harness.replicas as [HarnessReplica, HarnessReplica];
    // Past A's first lease: from here A's sweeps judge the fleet.
    await harness.advanceTo(config.leaseTtlMs + config.sweepIntervalMs);
    // A renews its role at its next sweep and is paused before it sees the answer.
    const paused = a.stopAfterNext('acquireLeadership');
    await harness.advance(config.sweepIntervalMs);
    await paused;
    const pausedAt = harness.nowMs;
    // A worker only a sweeper can fail: its replica is gone.
    const stray = await createStrandedWorker(harness.em(), {
      name: 'stray-of-a-gone-replica',
      replicaId: 'replica-gone',
      connectedSince: new Date(harness.time.now().getTime() - 10 * config.leaseTtlMs),
    });

    // A's role runs out while it is paused; B takes it and claims term 2.
    const takenAt = await untilLeader(b);
    expect(await term()).toEqual({ term: 2, holder: 'replica-b' });
    expect(takenAt - pausedAt).toBeGreaterThanOrEqual(config.sweeperLeadershipTtlMs);
    expect(takenAt - pausedAt).toBeLessThanOrEqual(config.sweeperLeadershipTtlMs + config.sweepIntervalMs);

    // A resumes mid-sweep, still believing it leads: its fenced transaction finds term 2 and writes nothing.
    a.cont();
    await harness.settle();
    expect(leaders()).toEqual(['replica-b']);
    expect((await harness.worker(stray.id)).status).toBe('ONLINE');
    expect(logsOfA.lines()).toContainEqual(
      expect.objectContaining({ msg: 'a newer sweeper term exists; stepping down', term: 1 }),
    );

    // B judges it once its own first lease is over.
    await harness.advanceTo(takenAt + config.leaseTtlMs - 1);
    expect((await harness.worker(stray.id)).status).toBe('ONLINE');
    await harness.advanceTo(takenAt + config.leaseTtlMs);
    const failed = await harness.worker(stray.id);
    expect(failed.status).toBe('FAILED');
    expect(failed.statusReason).toContain('lease expired');
  });

  it('passes to the other replica when the leader dies, which gives every worker one full lease before failing it', async () => {
    const leader = harness.replicas.find((r) => r.app.fleet.service.isSweepLeader) as HarnessReplica;
    const survivor = harness.replicas.find((r) => r !== leader) as HarnessReplica;
    // `roaming` knows both replicas; `stranded` only the one that dies.
    const roaming = await leader.connect('roaming');
    const stranded = await leader.connect('stranded');
    await harness.advance(2 * config.heartbeatIntervalMs);
    const killedAt = harness.nowMs;
    leader.kill();
    roaming.abandon();
    stranded.abandon();

    // The roaming agent reconnects to the survivor and is the same worker, once.
    const moved = await survivor.connect(roaming.identity);
    expect(moved.workerId).toBe(roaming.workerId);
    expect(await harness.worker(roaming.workerId)).toMatchObject({ status: 'ONLINE', replicaId: survivor.id });

    // The stranded agent's lease runs out with nobody to notice but the sweeper,
    // whose role passes once the dead leader's role lease has run out...
    const takenAt = await untilLeader(survivor);
    expect(takenAt - killedAt).toBeLessThanOrEqual(config.sweeperLeadershipTtlMs + config.sweepIntervalMs);
    // ...and which then gives every worker one full lease, though this one's ran out long ago.
    await harness.advanceTo(takenAt + config.leaseTtlMs - 1);
    expect((await harness.worker(stranded.workerId)).status).toBe('ONLINE');
    await harness.advanceTo(takenAt + config.leaseTtlMs);
    const failed = await harness.worker(stranded.workerId);
    expect(failed.status).toBe('FAILED');
    expect(failed.statusReason).toContain('lease expired');

    // Never two rows, nor two ONLINE entries, for one worker.
    const workers = await harness.em().find(Worker, { name: { $in: ['roaming', 'stranded'] } });
    expect(workers.map((w) => [w.name, w.status]).sort()).toEqual([
      ['roaming', 'ONLINE'],
      ['stranded', 'FAILED'],
    ]);
    await moved.close();
  });
});
