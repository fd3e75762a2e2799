import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { AdminService } from '../../gen/switchboard/v1/admin_pb.js';
import { WorkerStatus } from '../../gen/switchboard/v1/fleet_pb.js';
import { createTestAgent, spawnAgentProcess, waitForExit } from '../support/agents.js';
import { eventually, postJson, startControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { RawAgentStream } from '../support/raw-stream.js';
import { bearer } from '../support/clients.js';

interface WorkerJson {
  id: string;
  name: string;
  status: string;
  statusReason?: string;
  labels?: Record<string, string>;
  metrics?: { rssBytes?: string; heapUsedBytes?: string; cpuCount?: number };
  connectedSince?: string;
  lastHeartbeatAt?: string;
}

const LEASE_TTL_MS = 10_000;

describe('worker fleet over live agent streams (PostgreSQL + Redis)', () => {
  let cp: TestControlPlane;
  let admin: ReturnType<typeof createClient<typeof AdminService>>;
  let joinToken: string;

  beforeAll(async () => {
    cp = await startControlPlane({
      env: {
        FAILURE_GRACE_MS: '1000',
        HEARTBEAT_INTERVAL_MS: '200',
        // Longer than a killed agent takes to be noticed: its stream's end is the signal, not its lease.
        LEASE_TTL_MS: String(LEASE_TTL_MS),
        SWEEP_INTERVAL_MS: '100',
        METRICS_FLUSH_INTERVAL_MS: '100',
      },
    });
    admin = createClient(
      AdminService,
      createGrpcTransport({ baseUrl: cp.grpcUrl, interceptors: [bearer(cp.adminToken)] }),
    );
    joinToken = await cp.joinToken(1000);
  });
  afterAll(async () => {
    await cp?.close();
  });

  async function workerNamed(name: string): Promise<WorkerJson | undefined> {
    const { json } = await postJson(
      cp.httpUrl,
      'switchboard.v1.AdminService/ListWorkers',
      { pageSize: 1000 },
      cp.adminToken,
    );
    return (json.workers as WorkerJson[] | undefined)?.find((w) => w.name === name);
  }

  it('shows a connected agent ONLINE with its real metrics, over Connect JSON and over gRPC', async () => {
    const agent = createTestAgent(cp.grpcAddress, joinToken, { labels: { region: 'eu', zone: 'eu-1a' } });
    agent.start();
    try {
      await agent.connected();
      const viaJson = await eventually(async () => {
        const worker = await workerNamed(agent.options.workerName);
        return worker?.metrics?.rssBytes ? worker : undefined;
      });
      expect(viaJson.status).toBe('WORKER_STATUS_ONLINE');
      expect(Number(viaJson.metrics?.rssBytes)).toBeGreaterThan(10_000_000);
      expect(Number(viaJson.metrics?.heapUsedBytes)).toBeGreaterThan(0);
      expect(viaJson.labels).toEqual({ region: 'eu', zone: 'eu-1a' });
      expect(viaJson.connectedSince).toBeDefined();
      expect(viaJson.id).toBe(agent.workerId);

      const viaGrpc = await admin.getWorker({ workerId: agent.workerId });
      expect(viaGrpc.worker?.status).toBe(WorkerStatus.ONLINE);
      expect(viaGrpc.worker?.metrics?.rssBytes).toBeGreaterThan(10_000_000n);
      expect(viaGrpc.worker?.lastHeartbeatAt).toBeDefined();
    } finally {
      await agent.stop();
    }
  });

  it('turns the worker OFFLINE at once when the agent stops cleanly', async () => {
    const agent = createTestAgent(cp.grpcAddress, joinToken);
    agent.start();
    await agent.connected();
    await agent.stop();
    const worker = await eventually(async () => {
      const w = await workerNamed(agent.options.workerName);
      return w?.status === 'WORKER_STATUS_OFFLINE' ? w : undefined;
    }, 2000);
    expect(worker.statusReason).toBe('stream closed by agent');
    expect(worker.connectedSince).toBeUndefined();
  });

  it('turns the worker OFFLINE promptly when the agent process is killed, and FAILED after the grace', async () => {
    const name = `killed-${Date.now().toString(36)}`;
    const child = spawnAgentProcess(['--control-plane', cp.grpcAddress, '--name', name, '--join-token', joinToken]);
    try {
      await eventually(
        async () => ((await workerNamed(name))?.status === 'WORKER_STATUS_ONLINE' ? true : undefined),
        20_000,
      );
      const killedAt = Date.now();
      child.kill('SIGKILL');
      await waitForExit(child);
      await eventually(
        async () => ((await workerNamed(name))?.status === 'WORKER_STATUS_OFFLINE' ? true : undefined),
        LEASE_TTL_MS,
      );
      // Before the lease TTL could have run out: the killed process's connection ending is the signal.
      expect(Date.now() - killedAt).toBeLessThan(LEASE_TTL_MS);
      // Not back within FAILURE_GRACE_MS: FAILED. (When, to the millisecond, is checked on a
      // fake clock in fleet-timing.test.ts; here the point is the real killed process.)
      const failed = await eventually(async () => {
        const w = await workerNamed(name);
        return w?.status === 'WORKER_STATUS_FAILED' ? w : undefined;
      }, 10_000);
      expect(Date.now() - killedAt).toBeGreaterThanOrEqual(1000);
      expect(failed.statusReason).toContain('not back within the failure grace');
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('keeps the worker identity when the agent reconnects', async () => {
    const name = `reconnect-${Date.now().toString(36)}`;
    const first = new RawAgentStream(cp.grpcUrl, joinToken);
    first.hello(name);
    const welcome = await first.next();
    const workerId = welcome.payload.case === 'welcome' ? welcome.payload.value.workerId : '';
    const credential = welcome.payload.case === 'welcome' ? welcome.payload.value.workerCredential : '';
    expect(credential).toMatch(/^ey/);
    first.end();
    await eventually(async () => ((await workerNamed(name))?.status === 'WORKER_STATUS_OFFLINE' ? true : undefined));

    const second = new RawAgentStream(cp.grpcUrl, joinToken);
    // Reconnects present the worker credential from the Welcome, not the join token.
    second.hello(name, { workerId, credential: { case: 'workerCredential', value: credential } });
    const again = await second.next();
    expect(again.payload.case === 'welcome' && again.payload.value.workerId).toBe(workerId);
    const all = await postJson(
      cp.httpUrl,
      'switchboard.v1.AdminService/ListWorkers',
      { pageSize: 1000 },
      cp.adminToken,
    );
    expect((all.json.workers as WorkerJson[]).filter((w) => w.name === name)).toHaveLength(1);
    second.end();
  });

  it('refuses a second live agent process that uses the same worker name', async () => {
    const name = `dup-${Date.now().toString(36)}`;
    const holder = new RawAgentStream(cp.grpcUrl, joinToken);
    holder.hello(name, { instanceId: 'instance-aaaaaaaa' });
    await holder.next();
    const intruder = new RawAgentStream(cp.grpcUrl, joinToken);
    intruder.hello(name, { instanceId: 'instance-bbbbbbbb' });
    const error = await intruder.next().then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(error?.code).toBe(Code.AlreadyExists);
    // The holder is untouched.
    holder.heartbeat(1n);
    expect((await holder.next()).payload.case).toBe('heartbeatAck');
    expect((await workerNamed(name))?.status).toBe('WORKER_STATUS_ONLINE');
    holder.end();
  });

  it('refuses a stream whose first message is not a Hello, and stores nothing', async () => {
    const stream = new RawAgentStream(cp.grpcUrl, joinToken);
    stream.heartbeat(1n);
    const error = await stream.next().then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(error?.code).toBe(Code.FailedPrecondition);
  });

  it('refuses an invalid Hello with INVALID_ARGUMENT naming the field, and stores nothing', async () => {
    const before = await postJson(
      cp.httpUrl,
      'switchboard.v1.AdminService/ListWorkers',
      { pageSize: 1000 },
      cp.adminToken,
    );
    const stream = new RawAgentStream(cp.grpcUrl, joinToken);
    stream.hello('Not A Valid Name!');
    const error = await stream.next().then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(error?.code).toBe(Code.InvalidArgument);
    expect(error?.rawMessage).toContain('hello.worker_name');
    const after = await postJson(
      cp.httpUrl,
      'switchboard.v1.AdminService/ListWorkers',
      { pageSize: 1000 },
      cp.adminToken,
    );
    expect((after.json.workers as WorkerJson[]).length).toBe((before.json.workers as WorkerJson[]).length);
  });

  it('pages through ListWorkers with a cursor and filters by status', async () => {
    const streams = ['page-a', 'page-b', 'page-c'].map((name) => {
      const s = new RawAgentStream(cp.grpcUrl, joinToken);
      s.hello(`${name}-${Date.now().toString(36)}`);
      return s;
    });
    await Promise.all(streams.map((s) => s.next()));
    const seen: string[] = [];
    let pageToken = '';
    do {
      const page = await admin.listWorkers({ pageSize: 2, pageToken, status: WorkerStatus.ONLINE });
      expect(page.workers.length).toBeLessThanOrEqual(2);
      for (const w of page.workers) expect(w.status).toBe(WorkerStatus.ONLINE);
      seen.push(...page.workers.map((w) => w.name));
      pageToken = page.nextPageToken;
    } while (pageToken !== '');
    expect(seen.filter((n) => n.startsWith('page-'))).toHaveLength(3);
    expect([...seen].sort()).toEqual(seen);
    for (const s of streams) s.end();
  });

  it('answers bad admin input with INVALID_ARGUMENT and unknown ids with NOT_FOUND', async () => {
    const badToken = await admin.listWorkers({ pageToken: 'garbage' }).catch((e: unknown) => ConnectError.from(e));
    expect(badToken instanceof ConnectError && badToken.code).toBe(Code.InvalidArgument);
    const negative = await admin.listWorkers({ pageSize: -1 }).catch((e: unknown) => ConnectError.from(e));
    expect(negative instanceof ConnectError && negative.code).toBe(Code.InvalidArgument);
    const missing = await admin
      .getWorker({ workerId: '00000000-0000-4000-8000-000000000000' })
      .catch((e: unknown) => ConnectError.from(e));
    expect(missing instanceof ConnectError && missing.code).toBe(Code.NotFound);
    const { status, json } = await postJson(
      cp.httpUrl,
      'switchboard.v1.AdminService/GetWorker',
      { workerId: 'x' },
      cp.adminToken,
    );
    expect(status).toBe(400);
    expect(json.code).toBe('invalid_argument');
  });
});
