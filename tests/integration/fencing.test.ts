import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnAgentProcess, waitForExit } from '../support/agents.js';
import { eventually, postJson, startControlPlane, type TestControlPlane } from '../support/control-plane.js';

describe('a frozen agent (SIGSTOP)', () => {
  let cp: TestControlPlane;
  beforeAll(async () => {
    cp = await startControlPlane({
      env: { HEARTBEAT_INTERVAL_MS: '250', LEASE_TTL_MS: '1500', SWEEP_INTERVAL_MS: '100', FAILURE_GRACE_MS: '500' },
    });
  });
  afterAll(async () => {
    await cp?.close();
  });

  const statusOf = async (name: string) => {
    const { json } = await postJson(
      cp.httpUrl,
      'switchboard.v1.AdminService/ListWorkers',
      { pageSize: 1000 },
      cp.adminToken,
    );
    return (json.workers as { name: string; status: string; id: string; lastHeartbeatAt?: string }[] | undefined)?.find(
      (w) => w.name === name,
    );
  };

  it('is FAILED once its lease runs out, fences itself when resumed, and re-registers cleanly', async () => {
    const name = `frozen-${Date.now().toString(36)}`;
    const child = spawnAgentProcess([
      '--control-plane',
      cp.grpcAddress,
      '--name',
      name,
      '--join-token',
      await cp.joinToken(1),
    ]);
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    try {
      const online = await eventually(async () => {
        const w = await statusOf(name);
        return w?.status === 'WORKER_STATUS_ONLINE' ? w : undefined;
      }, 20_000);
      // At least one heartbeat acknowledged (and recorded) before freezing.
      await eventually(async () => ((await statusOf(name))?.lastHeartbeatAt ? true : undefined), 10_000);
      const frozenAt = Date.now();
      child.kill('SIGSTOP');
      // FAILED once its lease runs out. (Exactly when, within one sweep of the lease TTL, is
      // checked on a fake clock in fleet-timing.test.ts; here the point is a real frozen process.)
      await eventually(
        async () => ((await statusOf(name))?.status === 'WORKER_STATUS_FAILED' ? true : undefined),
        10_000,
      );
      expect(Date.now() - frozenAt).toBeGreaterThanOrEqual(1000);

      child.kill('SIGCONT');
      await eventually(async () => (output.includes('fenced (work stopped)') ? true : undefined), 10_000);
      const back = await eventually(async () => {
        const w = await statusOf(name);
        return w?.status === 'WORKER_STATUS_ONLINE' ? w : undefined;
      }, 15_000);
      // Same worker, re-registered with its stored credential (the join token was single-use).
      expect(back.id).toBe(online.id);
    } finally {
      child.kill('SIGCONT');
      child.kill('SIGKILL');
      await waitForExit(child);
    }
  }, 60_000);
});
