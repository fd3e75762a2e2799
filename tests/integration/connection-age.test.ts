import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { AdminService } from '../../gen/switchboard/v1/admin_pb.js';
import { WorkerStatus } from '../../gen/switchboard/v1/fleet_pb.js';
import { createTestAgent } from '../support/agents.js';
import { bearer } from '../support/clients.js';
import { startControlPlane, type TestControlPlane } from '../support/control-plane.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('long-lived agent connections', () => {
  let cp: TestControlPlane;
  let admin: ReturnType<typeof createClient<typeof AdminService>>;
  beforeAll(async () => {
    cp = await startControlPlane({ env: { MAX_CONNECTION_AGE_MS: '1500', SWEEP_INTERVAL_MS: '100' } });
    admin = createClient(
      AdminService,
      createGrpcTransport({ baseUrl: cp.grpcUrl, interceptors: [bearer(cp.adminToken)] }),
    );
  });
  afterAll(async () => {
    await cp?.close();
  });

  it('ends streams at the maximum connection age so agents rebalance, without the worker going offline', async () => {
    const agent = createTestAgent(cp.grpcAddress, await cp.joinToken(1));
    let welcomes = 0;
    agent.on('welcome', () => welcomes++);
    agent.start();
    try {
      await agent.connected();
      await sleep(4000);
      // 1.5 s ± 10% per stream: the agent was sent away and came back at least twice.
      expect(welcomes).toBeGreaterThanOrEqual(3);
      const { worker } = await admin.getWorker({ workerId: agent.workerId });
      expect(worker?.status).toBe(WorkerStatus.ONLINE);
      const { events } = await admin.listWorkerEvents({ workerId: agent.workerId });
      expect(events.map((e) => e.kind).filter((k) => k !== 'ONLINE')).toEqual([]);
    } finally {
      await agent.stop();
    }
  });

  it('accepts keepalive pings every second without GOAWAY (too_many_pings)', async () => {
    const quiet = await startControlPlane();
    const agent = createTestAgent(quiet.grpcAddress, await quiet.joinToken(1), {
      keepaliveTimeMs: 1000,
      keepaliveTimeoutMs: 1000,
    });
    let welcomes = 0;
    agent.on('welcome', () => welcomes++);
    agent.start();
    try {
      await agent.connected();
      await sleep(3500);
      expect(welcomes).toBe(1);
      expect(agent.state).toBe('connected');
    } finally {
      await agent.stop();
      await quiet.close();
    }
  });
});
