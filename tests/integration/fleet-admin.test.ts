import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { AdminService } from '../../gen/switchboard/v1/admin_pb.js';
import { Schedulability, WorkerStatus } from '../../gen/switchboard/v1/fleet_pb.js';
import { bearer } from '../support/clients.js';
import { eventually, postJson, startControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { RawAgentStream } from '../support/raw-stream.js';
import { signUp } from '../support/tenants.js';

describe('fleet administration (PostgreSQL + Redis)', () => {
  let cp: TestControlPlane;
  let admin: ReturnType<typeof createClient<typeof AdminService>>;
  let joinToken: string;

  beforeAll(async () => {
    cp = await startControlPlane({ env: { FAILURE_GRACE_MS: '500', SWEEP_INTERVAL_MS: '100' } });
    admin = createClient(
      AdminService,
      createGrpcTransport({ baseUrl: cp.grpcUrl, interceptors: [bearer(cp.adminToken)] }),
    );
    joinToken = await cp.joinToken(1000);
  });
  afterAll(async () => {
    await cp?.close();
  });

  async function connect(name: string, labels: Record<string, string> = {}) {
    const stream = new RawAgentStream(cp.grpcUrl, joinToken);
    stream.hello(name, { labels });
    const welcome = await stream.next();
    if (welcome.payload.case !== 'welcome') throw new Error('no welcome');
    return { stream, workerId: welcome.payload.value.workerId };
  }

  it('cordons, drains and uncordons a worker, keeping the reason and recording each change', async () => {
    const { stream, workerId } = await connect('admin-cordon');
    const cordoned = await admin.cordonWorker({ workerId, reason: 'kernel upgrade' });
    expect(cordoned.worker?.schedulability).toBe(Schedulability.CORDONED);
    expect(cordoned.worker?.schedulabilityReason).toBe('kernel upgrade');
    expect(cordoned.worker?.status).toBe(WorkerStatus.ONLINE);
    // Repeating it changes nothing and records nothing.
    await admin.cordonWorker({ workerId, reason: 'again' });
    const draining = admin.drainWorker({ workerId, reason: 'moving racks' });
    const command = await stream.next();
    expect(command.payload.case === 'drain' && command.payload.value.reason).toBe('moving racks');
    stream.acknowledge(command);
    const drained = await draining;
    expect(drained.agentNotified).toBe(true);
    expect(drained.worker?.schedulability).toBe(Schedulability.DRAINING);
    expect(drained.sessionsRemaining).toBe(0);
    const active = await admin.uncordonWorker({ workerId });
    expect(active.worker?.schedulability).toBe(Schedulability.ACTIVE);

    const { events } = await admin.listWorkerEvents({ workerId });
    expect(events.map((e) => e.kind)).toEqual(['UNCORDONED', 'DRAINING', 'CORDONED', 'ONLINE']);
    expect(events[2]?.reason).toBe('kernel upgrade');
    expect(events[2]?.actorUserId).not.toBe('');
    stream.end();
  });

  it("refuses to remove the fleet's last worker unless told to, saying what it would mean", async () => {
    // A fleet of its own, so this worker is the only one.
    const own = await startControlPlane();
    try {
      const ownAdmin = createClient(
        AdminService,
        createGrpcTransport({ baseUrl: own.grpcUrl, interceptors: [bearer(own.adminToken)] }),
      );
      const raw = new RawAgentStream(own.grpcUrl, await own.joinToken(1));
      raw.hello('only-one');
      const welcome = await raw.next();
      const workerId = welcome.payload.case === 'welcome' ? welcome.payload.value.workerId : '';
      raw.end();
      await eventually(async () => {
        const w = await ownAdmin.getWorker({ workerId });
        return w.worker?.status === WorkerStatus.OFFLINE ? true : undefined;
      });
      const refused = await ownAdmin.removeWorker({ workerId }).catch((e: unknown) => ConnectError.from(e));
      expect((refused as ConnectError).code).toBe(Code.FailedPrecondition);
      expect((refused as ConnectError).rawMessage).toMatch(/last worker.*wait PENDING.*force/);
      const removed = await ownAdmin.removeWorker({ workerId, force: true });
      expect(removed.worker?.status).toBe(WorkerStatus.REMOVED);
    } finally {
      await own.close();
    }
  });

  it('keeps a worker cordoned across reconnects', async () => {
    const first = await connect('admin-sticky');
    await admin.cordonWorker({ workerId: first.workerId, reason: 'keep' });
    first.stream.end();
    await eventually(async () => {
      const w = await admin.getWorker({ workerId: first.workerId });
      return w.worker?.status === WorkerStatus.OFFLINE ? true : undefined;
    });
    await connect('admin-sticky');
    const again = await admin.getWorker({ workerId: first.workerId });
    expect(again.worker?.status).toBe(WorkerStatus.ONLINE);
    expect(again.worker?.schedulability).toBe(Schedulability.CORDONED);
  });

  it('removes only offline, failed or drained workers; a removed worker needs a new join token', async () => {
    const { stream, workerId } = await connect('admin-remove');
    const refused = await admin.removeWorker({ workerId }).catch((e: unknown) => ConnectError.from(e));
    expect(refused).toBeInstanceOf(ConnectError);
    expect((refused as ConnectError).code).toBe(Code.FailedPrecondition);

    // Drained (no sessions): removal ends its stream and its credential.
    const draining = admin.drainWorker({ workerId, reason: 'retire' });
    const command = await stream.next();
    expect(command.payload.case).toBe('drain');
    stream.acknowledge(command);
    expect((await draining).agentNotified).toBe(true);
    const removed = await admin.removeWorker({ workerId });
    expect(removed.worker?.status).toBe(WorkerStatus.REMOVED);
    const ended = await stream.next().then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(ended?.code).toBe(Code.PermissionDenied);
    await expect(admin.cordonWorker({ workerId, reason: 'x' })).rejects.toMatchObject({
      code: Code.FailedPrecondition,
    });
    const { events } = await admin.listWorkerEvents({ workerId });
    expect(events[0]?.kind).toBe('REMOVED');
  });

  it('filters ListWorkers by label selector and agent version', async () => {
    await connect('admin-eu-a', { region: 'eu', zone: 'eu-1a' });
    await connect('admin-eu-b', { region: 'eu', zone: 'eu-1b' });
    await connect('admin-us', { region: 'us' });
    const names = async (labelSelector: string, agentVersion = '') =>
      (await admin.listWorkers({ labelSelector, agentVersion, pageSize: 1000 })).workers
        .map((w) => w.name)
        .filter((n) => n.startsWith('admin-eu') || n === 'admin-us');
    expect(await names('region=eu')).toEqual(['admin-eu-a', 'admin-eu-b']);
    expect(await names('region=eu,zone!=eu-1a')).toEqual(['admin-eu-b']);
    expect(await names('!zone')).toEqual(['admin-us']);
    expect(await names('', 'raw-1')).toEqual(['admin-eu-a', 'admin-eu-b', 'admin-us']);
    expect(await names('', 'no-such-version')).toEqual([]);
    await expect(admin.listWorkers({ labelSelector: 'a b' })).rejects.toMatchObject({ code: Code.InvalidArgument });
  });

  it('streams a snapshot and then every change to WatchWorkers, over gRPC and over Connect', async () => {
    await connect('admin-before-watch');
    const abort = new AbortController();
    const watch = admin.watchWorkers({}, { signal: abort.signal })[Symbol.asyncIterator]();
    const first = await watch.next();
    expect(first.done).toBe(false);
    expect(first.value?.snapshot.length).toBeGreaterThan(0);

    const { stream, workerId } = await connect('admin-watched');
    await admin.cordonWorker({ workerId, reason: 'watch me' });
    stream.end();
    const seen: string[] = [];
    const deadline = Date.now() + 10_000;
    while (seen.length < 3 && Date.now() < deadline) {
      const next = await watch.next();
      if (next.done) break;
      if (next.value.worker?.id === workerId) seen.push(next.value.event?.kind ?? '');
    }
    expect(seen).toEqual(['ONLINE', 'CORDONED', 'OFFLINE']);
    abort.abort();

    // Connect protocol (server streaming over HTTP/1.1): the snapshot arrives as the first frame.
    const response = await fetch(`${cp.httpUrl}/switchboard.v1.AdminService/WatchWorkers`, {
      method: 'POST',
      headers: {
        'content-type': 'application/connect+json',
        authorization: `Bearer ${cp.adminToken}`,
      },
      body: envelope('{}'),
    });
    expect(response.status).toBe(200);
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const chunk = await reader.read();
    const frame: Uint8Array = chunk.value ?? new Uint8Array();
    const text = new TextDecoder().decode(frame.slice(5));
    expect(JSON.parse(text)).toHaveProperty('snapshot');
    await reader.cancel();
  });

  it('summarises the fleet', async () => {
    const { workerId } = await connect('admin-summary');
    await admin.cordonWorker({ workerId, reason: 'summary' });
    await connect('admin-summary-active');
    const summary = await admin.getFleetSummary({});
    expect(summary.workersByStatus.ONLINE).toBeGreaterThan(0);
    expect(summary.totalCapacity).toBeGreaterThan(0);
    expect(summary.freeCapacity).toBeLessThanOrEqual(summary.totalCapacity);
    expect(summary.onlineBySchedulability.CORDONED).toBeGreaterThan(0);
  });

  it('switches fleet-wide maintenance on and off with a message, audited', async () => {
    const on = await admin.setMaintenance({ enabled: true, message: 'database upgrade 22:00-23:00 UTC' });
    expect(on.maintenance?.enabled).toBe(true);
    const summary = await admin.getFleetSummary({});
    expect(summary.maintenance?.enabled).toBe(true);
    expect(summary.maintenance?.message).toBe('database upgrade 22:00-23:00 UTC');
    expect(summary.maintenance?.setByUserId).not.toBe('');
    await admin.setMaintenance({ enabled: false, message: '' });
    expect((await admin.getFleetSummary({})).maintenance?.enabled).toBe(false);
    const { json } = await postJson(
      cp.httpUrl,
      'switchboard.v1.AuditService/ListAuditEvents',
      { actionPrefix: 'fleet.maintenance' },
      cp.adminToken,
    );
    expect((json.events as { action: string }[]).map((e) => e.action)).toEqual([
      'fleet.maintenance_off',
      'fleet.maintenance_on',
    ]);
  });

  it('keeps fleet administration for platform admins', async () => {
    const tenant = await signUp(cp.httpUrl, 'notadmin');
    for (const path of ['GetFleetSummary', 'SetMaintenance', 'CordonWorker', 'ListWorkerEvents']) {
      const { status } = await postJson(cp.httpUrl, `switchboard.v1.AdminService/${path}`, {}, tenant.accessToken);
      expect({ path, status }).toEqual({ path, status: 403 });
    }
  });
});

/** One Connect streaming envelope: flags byte, 4-byte length, then the JSON message. */
function envelope(json: string): Uint8Array {
  const body = new TextEncoder().encode(json);
  const out = new Uint8Array(5 + body.length);
  new DataView(out.buffer).setUint32(1, body.length);
  out.set(body, 5);
  return out;
}
