import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { AdminService, type WatchWorkersResponse } from '../../gen/switchboard/v1/admin_pb.js';
import { WorkerStatus } from '../../gen/switchboard/v1/fleet_pb.js';
import { createTestAgent } from '../support/agents.js';
import { bearer } from '../support/clients.js';
import { eventually, postJson, startControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { signUp } from '../support/tenants.js';
import { Redis } from 'ioredis';
import { TEST_REDIS_URL } from '../support/services.js';

describe('two control-plane replicas sharing PostgreSQL and Redis', () => {
  let a: TestControlPlane;
  let b: TestControlPlane;
  beforeAll(async () => {
    a = await startControlPlane({ env: { REPLICA_ID: 'replica-a' } });
    b = await startControlPlane({ env: { REPLICA_ID: 'replica-b' }, replicaOf: a });
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
  });

  it('delivers a command issued on replica B to an agent whose stream lives on replica A', async () => {
    const agent = createTestAgent(a.grpcAddress, await a.joinToken(1));
    const drained = new Promise<string>((resolve) => agent.once('drain', resolve));
    agent.start();
    try {
      await agent.connected();
      const adminOnB = createClient(
        AdminService,
        createGrpcTransport({ baseUrl: b.grpcUrl, interceptors: [bearer(b.adminToken)] }),
      );
      const seenOnB = await adminOnB.getWorker({ workerId: agent.workerId });
      expect(seenOnB.worker?.replicaId).toBe('replica-a');
      // The worker's lease is the routing table: it names the replica holding the stream,
      // and that replica keeps a lease of its own.
      const redis = new Redis(TEST_REDIS_URL);
      try {
        expect(await redis.get(`${a.redisPrefix}worker:${agent.workerId}:lease`)).toMatch(/^replica-a\|/);
        expect(await redis.get(`${a.redisPrefix}replica:replica-a:lease`)).toBe('replica-a');
      } finally {
        redis.disconnect();
      }

      const response = await adminOnB.drainWorker({ workerId: agent.workerId, reason: 'rack move' });
      expect(response.agentNotified).toBe(true);
      expect(await drained).toBe('rack move');
      expect(agent.draining).toBe(true);
    } finally {
      await agent.stop();
    }
  });

  it('shows changes made through one replica to watchers on the other', async () => {
    const watchOnB = createClient(
      AdminService,
      createGrpcTransport({ baseUrl: b.grpcUrl, interceptors: [bearer(b.adminToken)] }),
    );
    const abort = new AbortController();
    const stream = watchOnB.watchWorkers({}, { signal: abort.signal })[Symbol.asyncIterator]();
    await stream.next(); // snapshot
    const agent = createTestAgent(a.grpcAddress, await a.joinToken(1));
    agent.start();
    try {
      await agent.connected();
      const change = await eventually(async () => {
        const next: IteratorResult<WatchWorkersResponse> = await stream.next();
        return next.done || next.value.worker?.id !== agent.workerId ? undefined : next.value;
      });
      expect(change.event?.kind).toBe('ONLINE');
      expect(change.worker?.status).toBe(WorkerStatus.ONLINE);
    } finally {
      abort.abort();
      await agent.stop();
    }
  });

  it('routes a tenant request made on replica B to the session whose worker streams to replica A', async () => {
    const agent = createTestAgent(a.grpcAddress, await a.joinToken(1));
    agent.start();
    try {
      await agent.connected();
      const tenant = await signUp(b.httpUrl, 'routing');
      const onB = (path: string, body: unknown) =>
        postJson(b.httpUrl, `switchboard.v1.${path}`, body, tenant.accessToken);
      const { json } = await onB('SessionService/CreateSession', { name: 'routed', engine: 'ENGINE_SANDBOX' });
      const id = (json.session as { id: string }).id;
      const status = async () =>
        (await onB('SessionService/GetSession', { sessionId: id })).json.session as {
          status: string;
          workerId?: string;
        };
      await eventually(async () => ((await status()).status === 'SESSION_STATUS_SCAN_QR' ? true : undefined));
      expect((await status()).workerId).toBe(agent.workerId);
      // The scan and the send are requests to the worker, relayed by replica A.
      expect((await onB('SandboxService/ScanQr', { sessionId: id, phoneNumber: '+15550008888' })).status).toBe(200);
      await eventually(async () => ((await status()).status === 'SESSION_STATUS_WORKING' ? true : undefined));
      // Accepted by B, dispatched by A (which holds the worker's stream), woken through Redis.
      const sent = await onB('MessageService/SendText', { sessionId: id, to: '+15550009999', text: 'via B' });
      expect(sent.status).toBe(200);
      const messageId = (sent.json.message as { id: string }).id;
      const sentVia = await eventually(async () => {
        const m = (await onB('MessageService/GetMessage', { messageId })).json.message as {
          whatsappMessageId?: string;
        };
        return m.whatsappMessageId;
      });
      expect(sentVia).toMatch(/^3EB0/);

      // A restart re-assigns it with its credentials, placed by B, delivered by A: the
      // credentials are read by A from the database and never cross Redis.
      const spy = new Redis(TEST_REDIS_URL);
      const seen: string[] = [];
      await spy.psubscribe(`${a.redisPrefix}*`);
      spy.on('pmessage', (_pattern: string, _channel: string, message: string) => seen.push(message));
      try {
        await onB('SessionService/RestartSession', { sessionId: id });
        await eventually(async () => ((await status()).status === 'SESSION_STATUS_WORKING' ? true : undefined));
        // The restart's announcements cross Redis whichever replica places it;
        // when B places it (usually: B handled the call), so does the
        // assignment command to A's agent. Neither may carry credentials.
        expect(seen.length).toBeGreaterThan(0);
        for (const message of seen) expect(message).not.toMatch(/authState|noiseKey|identityKey/);
      } finally {
        spy.disconnect();
      }
    } finally {
      await agent.stop();
    }
  });
});
