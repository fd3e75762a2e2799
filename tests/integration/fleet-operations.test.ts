import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestAgent, spawnAgentProcess, waitForExit } from '../support/agents.js';
import { eventually, postJson, startControlPlane, type TestControlPlane } from '../support/control-plane.js';

const TIMING = {
  HEARTBEAT_INTERVAL_MS: '250',
  LEASE_TTL_MS: '1500',
  SWEEP_INTERVAL_MS: '100',
  FAILURE_GRACE_MS: '500',
  METRICS_FLUSH_INTERVAL_MS: '100',
};

interface ListedWorker {
  id: string;
  name: string;
  status: string;
  schedulability?: string;
  statusReason?: string;
}

function admin(cp: TestControlPlane) {
  const call = (method: string, body: unknown) =>
    postJson(cp.httpUrl, `switchboard.v1.AdminService/${method}`, body, cp.adminToken);
  return {
    call,
    async named(name: string): Promise<ListedWorker | undefined> {
      const { json } = await call('ListWorkers', { pageSize: 1000 });
      return (json.workers as ListedWorker[] | undefined)?.find((w) => w.name === name);
    },
    async online(name: string): Promise<ListedWorker> {
      return eventually(async () => {
        const { json } = await call('ListWorkers', { pageSize: 1000 });
        const worker = (json.workers as ListedWorker[] | undefined)?.find((w) => w.name === name);
        return worker?.status === 'WORKER_STATUS_ONLINE' ? worker : undefined;
      }, 30_000);
    },
    async events(workerId: string): Promise<{ kind: string; reason: string; actorUserId?: string }[]> {
      const { json } = await call('ListWorkerEvents', { workerId });
      // Newest first on the wire; oldest first is easier to read in assertions.
      return ((json.events as { kind: string; reason: string; actorUserId?: string }[] | undefined) ?? []).reverse();
    },
  };
}

describe('operating single workers', () => {
  let cp: TestControlPlane;
  let api: ReturnType<typeof admin>;
  let joinToken: string;
  beforeAll(async () => {
    cp = await startControlPlane({ env: TIMING });
    api = admin(cp);
    joinToken = await cp.joinToken(20);
  });
  afterAll(async () => {
    await cp?.close();
  });

  it('ShutdownWorker stops the agent process cleanly through its stream', async () => {
    const name = `shut-${Date.now().toString(36)}`;
    const child = spawnAgentProcess(['--control-plane', cp.grpcAddress, '--name', name, '--join-token', joinToken]);
    try {
      const worker = await api.online(name);
      const { status, json } = await api.call('ShutdownWorker', { workerId: worker.id, reason: 'kernel upgrade' });
      expect(status).toBe(200);
      expect(json.agentNotified).toBe(true);
      expect(await waitForExit(child)).toEqual({ code: 0, signal: null });
      const after = await eventually(async () => {
        const w = await api.named(name);
        return w?.status === 'WORKER_STATUS_OFFLINE' ? w : undefined;
      }, 5000);
      expect(after.statusReason).toBe('stream closed by agent');
      const { json: audit } = await postJson(
        cp.httpUrl,
        'switchboard.v1.AuditService/ListAuditEvents',
        { actionPrefix: 'worker.' },
        cp.adminToken,
      );
      expect(audit.events).toEqual(
        expect.arrayContaining([expect.objectContaining({ action: 'worker.shutdown', targetId: worker.id })]),
      );

      // Nothing left to shut down, and unknown workers are not found.
      const again = await api.call('ShutdownWorker', { workerId: worker.id });
      expect(again.json.code).toBe('failed_precondition');
      const unknown = await api.call('ShutdownWorker', { workerId: '00000000-0000-4000-8000-000000000000' });
      expect(unknown.json.code).toBe('not_found');
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('SIGTERM drains the worker before the agent exits 0, and a restart makes it schedulable again', async () => {
    const name = `term-${Date.now().toString(36)}`;
    const stateDir = mkdtempSync(join(tmpdir(), 'sb-agent-'));
    const args = ['--control-plane', cp.grpcAddress, '--name', name, '--join-token', joinToken];
    const first = spawnAgentProcess(args, { AGENT_STATE_DIR: stateDir });
    let second: ReturnType<typeof spawnAgentProcess> | undefined;
    try {
      const worker = await api.online(name);
      first.kill('SIGTERM');
      expect(await waitForExit(first)).toEqual({ code: 0, signal: null });
      const events = await api.events(worker.id);
      expect(events.slice(-2)).toMatchObject([
        { kind: 'DRAINING', reason: 'the agent is draining (stopping)' },
        { kind: 'OFFLINE', reason: 'stream closed by agent' },
      ]);
      expect(events.at(-2)?.actorUserId ?? '').toBe('');
      expect((await api.named(name))?.schedulability).toBe('SCHEDULABILITY_DRAINING');

      second = spawnAgentProcess(args, { AGENT_STATE_DIR: stateDir });
      await api.online(name);
      const back = await eventually(async () => {
        const w = await api.named(name);
        return w?.schedulability === 'SCHEDULABILITY_ACTIVE' ? w : undefined;
      }, 5000);
      expect(back.id).toBe(worker.id);
      expect((await api.events(worker.id)).at(-1)).toMatchObject({ kind: 'UNCORDONED' });
    } finally {
      first.kill('SIGKILL');
      second?.kill('SIGKILL');
    }
  });

  it('an agent whose worker is removed exits with code 3 instead of retrying forever', async () => {
    const name = `removed-${Date.now().toString(36)}`;
    const child = spawnAgentProcess(['--control-plane', cp.grpcAddress, '--name', name, '--join-token', joinToken]);
    try {
      const worker = await api.online(name);
      await api.call('DrainWorker', { workerId: worker.id, reason: 'decommission' });
      const removed = await api.call('RemoveWorker', { workerId: worker.id });
      expect(removed.status).toBe(200);
      expect(await waitForExit(child)).toEqual({ code: 3, signal: null });
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('keeps an operator drain across an agent restart', async () => {
    const agent = createTestAgent(cp.grpcAddress, joinToken);
    agent.start();
    try {
      await agent.connected();
      await api.call('DrainWorker', { workerId: agent.workerId, reason: 'decommission' });
      await agent.stop();
      const restarted = createTestAgent(cp.grpcAddress, undefined, {
        workerName: agent.options.workerName,
        credentialFile: agent.options.credentialFile,
      });
      restarted.start();
      try {
        // Settled once connected: an agent's own drain is lifted before its Welcome is sent, an operator's kept.
        await restarted.connected();
        expect((await api.named(agent.options.workerName))?.schedulability).toBe('SCHEDULABILITY_DRAINING');
      } finally {
        await restarted.stop();
      }
    } finally {
      await agent.stop();
    }
  });

  it('GetWorker returns per-minute metrics history from the heartbeats', async () => {
    const agent = createTestAgent(cp.grpcAddress, joinToken);
    agent.start();
    try {
      await agent.connected();
      const history = await eventually(async () => {
        const { json } = await api.call('GetWorker', { workerId: agent.workerId, historyMinutes: 5 });
        const rollups = json.metricsHistory as { samples: number; rssBytesMax: string; minute: string }[] | undefined;
        const samples = (rollups ?? []).reduce((sum, r) => sum + r.samples, 0);
        return samples >= 3 ? rollups : undefined;
      }, 10_000);
      for (const rollup of history ?? []) {
        expect(Number(rollup.rssBytesMax)).toBeGreaterThan(0);
        expect(new Date(rollup.minute).getUTCSeconds()).toBe(0);
      }
      const tooLong = await api.call('GetWorker', { workerId: agent.workerId, historyMinutes: 1441 });
      expect(tooLong.json.code).toBe('invalid_argument');
    } finally {
      await agent.stop();
    }
  });
});
