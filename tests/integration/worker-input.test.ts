import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { pino } from 'pino';
import { AdminService } from '../../gen/switchboard/v1/admin_pb.js';
import type { ControlMessage } from '../../gen/switchboard/v1/worker_pb.js';
import { HeartbeatBuffer } from '../../src/fleet/heartbeat-buffer.js';
import { WorkerRepository } from '../../src/fleet/worker.repository.js';
import { bearer } from '../support/clients.js';
import { eventually, postJson, startControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { createTestAgent } from '../support/agents.js';
import { RawAgentStream } from '../support/raw-stream.js';
import { signUp, type TestTenant } from '../support/tenants.js';

// What workers send is input like any other: validated as it arrives, refused
// with INVALID_ARGUMENT (never OK, never INTERNAL), logged with its cause,
// and never allowed to harm other workers.

type LogLine = Record<string, unknown> & { msg?: string };

/** A logger that keeps every line (info and up) for the test to read. */
function capturingLogger() {
  const lines: LogLine[] = [];
  const logger = pino(
    { level: 'info', base: {} },
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as LogLine);
        done();
      },
    }),
  );
  return { logger, lines };
}

/**
 * The error that ended the stream, reading past whatever came before it; a
 * stream that ends cleanly or is still open after `ms` is a failure.
 */
async function endOf(stream: RawAgentStream, ms = 5000): Promise<ConnectError> {
  let timer: NodeJS.Timeout | undefined;
  const open = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the stream was still open after ${ms} ms`)), ms);
  });
  const ended = (async () => {
    for (;;) {
      try {
        await stream.next();
      } catch (error) {
        return ConnectError.from(error);
      }
    }
  })();
  try {
    return await Promise.race([ended, open]);
  } finally {
    clearTimeout(timer);
  }
}

/** Opens a raw worker stream, says hello and returns it with its worker id. */
async function connectWorker(cp: TestControlPlane, joinToken: string, name: string, labels = { zone: 'raw' }) {
  const stream = new RawAgentStream(cp.grpcUrl, joinToken);
  stream.hello(`${name}-${Date.now().toString(36)}`, { labels });
  const welcome = await stream.next();
  if (welcome.payload.case !== 'welcome') throw new Error(`expected a welcome, got ${welcome.payload.case}`);
  return { stream, workerId: welcome.payload.value.workerId };
}

describe('input from workers (PostgreSQL + Redis)', () => {
  let cp: TestControlPlane;
  let joinToken: string;
  let tenant: TestTenant;
  let admin: ReturnType<typeof createClient<typeof AdminService>>;
  const { logger, lines } = capturingLogger();

  beforeAll(async () => {
    cp = await startControlPlane({
      logger,
      env: {
        HEARTBEAT_INTERVAL_MS: '1000',
        LEASE_TTL_MS: '30000',
        // Flushed by hand, so a test decides which heartbeats share a flush.
        METRICS_FLUSH_INTERVAL_MS: '3600000',
      },
    });
    joinToken = await cp.joinToken(100);
    tenant = await signUp(cp.httpUrl, 'worker-input');
    admin = createClient(
      AdminService,
      createGrpcTransport({ baseUrl: cp.grpcUrl, interceptors: [bearer(cp.adminToken)] }),
    );
  });
  afterAll(async () => {
    await cp?.close();
  });

  /** A series as GET /metrics shows it (NaN when it does not). */
  const metric = async (series: string) => {
    const text = await (await fetch(`${cp.httpUrl}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${series} `));
    return line === undefined ? Number.NaN : Number(line.slice(series.length + 1));
  };
  /** The refusal counter for `cause`. */
  const refusedTotal = (cause: string) => metric(`switchboard_worker_events_refused_total{cause="${cause}"}`);
  const workerStatus = async (workerId: string) => (await admin.getWorker({ workerId })).worker;
  const rollupsOf = async (workerId: string) =>
    (await admin.getWorker({ workerId, historyMinutes: 60 })).metricsHistory;

  it('ends the stream of a heartbeat with NaN, Infinity or negative metrics with INVALID_ARGUMENT naming the field, and stores the other workers’ rollups of the same flush', async () => {
    const good = await connectWorker(cp, joinToken, 'good-metrics');
    good.stream.heartbeat(1n);
    expect((await good.stream.next()).payload.case).toBe('heartbeatAck');

    const bad = [Number.NaN, Number.POSITIVE_INFINITY, -5];
    const workers = await Promise.all(bad.map((_, i) => connectWorker(cp, joinToken, `bad-metrics-${i}`)));
    const ends = workers.map((worker, i) => {
      worker.stream.send({
        case: 'heartbeat',
        value: { sequence: 1n, metrics: { cpuPercent: bad[i], rssBytes: 1000n, cpuCount: 2 } },
      });
      return endOf(worker.stream);
    });
    const ended = await Promise.allSettled(ends);
    // One flush for everything buffered since: the good worker's heartbeat (and, were they accepted, the bad ones).
    await cp.app.fleet.service.flushHeartbeats();

    const stored = await rollupsOf(good.workerId);
    expect(stored).toHaveLength(1);
    expect(stored[0]?.cpuPercentMax).toBe(1.5);
    for (const end of ended) {
      expect(end.status).toBe('fulfilled');
      const error = end.status === 'fulfilled' ? end.value : undefined;
      expect(error?.code).toBe(Code.InvalidArgument);
      expect(error?.rawMessage).toContain('heartbeat.metrics.cpu_percent');
    }
    for (const worker of workers) {
      expect(await rollupsOf(worker.workerId)).toEqual([]);
      const status = await workerStatus(worker.workerId);
      expect(status?.statusReason).toMatch(/^protocol error: heartbeat\.metrics\.cpu_percent: /);
      const cause = lines.find(
        (l) => l.msg === 'worker stream ended: protocol error' && l.workerId === worker.workerId,
      );
      expect(cause?.field).toBe('heartbeat.metrics.cpu_percent');
      expect(String(cause?.violation)).toMatch(/must be (finite|greater than or equal to 0)/);
    }
    // Nothing failed in the database, and no SQL (with its parameters) reached the logs.
    expect(
      lines.filter((l) => l.msg === 'could not record heartbeats' || /could not record/.test(l.msg ?? '')),
    ).toEqual([]);
    expect(lines.filter((l) => JSON.stringify(l).includes('insert into'))).toEqual([]);

    good.stream.heartbeat(2n);
    expect((await good.stream.next()).payload.case).toBe('heartbeatAck');
    good.stream.end();
  });

  it('refuses a session event with a malformed session id with INVALID_ARGUMENT (not OK), logs the RPC with that code, and another worker keeps working', async () => {
    const other = await connectWorker(cp, joinToken, 'bystander');
    const broken = await connectWorker(cp, joinToken, 'malformed-id');
    broken.stream.send({
      case: 'sessionEvent',
      value: {
        sessionId: "x'); drop table session; --",
        epoch: 1,
        event: { case: 'qr', value: { payload: 'p', sequence: 1 } },
      },
    });
    const error = await endOf(broken.stream);
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toContain('session_event.session_id');

    await eventually(async () => {
      const rpc = lines.find(
        (l) =>
          l.msg === 'rpc' &&
          l.rpc === 'switchboard.v1.WorkerService/Connect' &&
          String(l.error).includes('session_event.session_id'),
      );
      return rpc ? expect(rpc.code).toBe('INVALID_ARGUMENT') : undefined;
    }, 5000);
    const refused = lines.find(
      (l) => l.msg === 'worker stream ended: protocol error' && l.workerId === broken.workerId,
    );
    expect(refused?.field).toBe('session_event.session_id');
    // Its stream broke: lost (reconnecting within the grace keeps it), with the protocol error as the reason.
    const status = await workerStatus(broken.workerId);
    expect(status?.statusReason).toMatch(/^protocol error: session_event\.session_id: /);
    const { events } = await admin.listWorkerEvents({ workerId: broken.workerId });
    expect(events[0]?.reason).toMatch(/^protocol error: session_event\.session_id: /);

    // The other worker on the same control plane is unaffected.
    other.stream.heartbeat(1n);
    expect((await other.stream.next()).payload.case).toBe('heartbeatAck');
    expect((await workerStatus(other.workerId))?.status).toBe(1);
    other.stream.end();
  });

  it('applies nothing of a session event that breaks a rule: the session keeps its state', async () => {
    // The only worker with this label: the session is placed on it.
    const worker = await connectWorker(cp, joinToken, 'oversized-qr', { zone: 'oversized-qr' });
    const beat = setInterval(() => worker.stream.heartbeat(BigInt(Date.now())), 500);
    try {
      const { json } = await postJson(
        cp.httpUrl,
        'switchboard.v1.SessionService/CreateSession',
        { name: 'oversized-qr', engine: 'ENGINE_SANDBOX', labelSelector: 'zone=oversized-qr' },
        tenant.accessToken,
      );
      const id = (json.session as { id: string }).id;
      let assign: ControlMessage;
      do assign = await worker.stream.next();
      while (assign.payload.case !== 'assignSession');
      worker.stream.acknowledge(assign);
      const epoch = assign.payload.value.epoch;
      worker.stream.send({
        case: 'sessionEvent',
        value: { sessionId: id, epoch, event: { case: 'qr', value: { payload: 'q'.repeat(5000), sequence: 1 } } },
      });
      const error = await endOf(worker.stream);
      expect(error.code).toBe(Code.InvalidArgument);
      expect(error.rawMessage).toContain('session_event.qr.payload');
      const { json: after } = await postJson(
        cp.httpUrl,
        'switchboard.v1.SessionService/GetSession',
        { sessionId: id },
        tenant.accessToken,
      );
      expect((after.session as { status: string }).status).not.toBe('SESSION_STATUS_SCAN_QR');
      const qr = await postJson(
        cp.httpUrl,
        'switchboard.v1.SessionService/GetQrCode',
        { sessionId: id },
        tenant.accessToken,
      );
      expect(qr.status).not.toBe(200);
    } finally {
      clearInterval(beat);
    }
  });

  it('answers a flood of stale events with a bounded number of warnings and one StopSession, and counts every one in /metrics', async () => {
    // A session no worker runs (nothing matches its selector): every report about it is stale.
    const { json } = await postJson(
      cp.httpUrl,
      'switchboard.v1.SessionService/CreateSession',
      { name: 'nobody-runs-me', engine: 'ENGINE_SANDBOX', labelSelector: 'zone=nowhere' },
      tenant.accessToken,
    );
    const session = json.session as { id: string; epoch: string };
    const epoch = Number(session.epoch);
    const worker = await connectWorker(cp, joinToken, 'flooder');
    const received: ControlMessage[] = [];
    const reading = (async () => {
      for (;;) received.push(await worker.stream.next());
    })().catch(() => undefined);

    const countedBefore = await refusedTotal('stale_event');
    const staleBefore = cp.app.sessions.reports.staleEvents;
    const FLOOD = 500;
    for (let i = 0; i < FLOOD; i++) {
      worker.stream.send({
        case: 'sessionEvent',
        value: {
          sessionId: session.id,
          epoch,
          event: { case: 'qr', value: { payload: `flood-${i}`, sequence: 1 } },
        },
      });
    }
    await eventually(
      async () => (cp.app.sessions.reports.staleEvents >= staleBefore + FLOOD ? true : undefined),
      20_000,
    );

    const warnings = lines.filter((l) => l.msg === 'stale session event refused' && l.workerId === worker.workerId);
    expect(warnings.length).toBeGreaterThanOrEqual(1);
    expect(warnings.length).toBeLessThanOrEqual(2);
    expect(await refusedTotal('stale_event')).toBe(countedBefore + FLOOD);
    // Told to stop the session once, not once per event.
    expect(received.filter((m) => m.payload.case === 'stopSession')).toHaveLength(1);
    worker.stream.cancel();
    await reading;
  });

  it('takes the old attempt’s late end after a RestartSession as expected: no warning, not refused, counted apart; a stale QR still is', async () => {
    const agent = createTestAgent(cp.grpcAddress, joinToken, { labels: { zone: 'restart' } });
    agent.start();
    await agent.connected();
    try {
      const created = await postJson(
        cp.httpUrl,
        'switchboard.v1.SessionService/CreateSession',
        { name: 'restarted', engine: 'ENGINE_SANDBOX', labelSelector: 'zone=restart' },
        tenant.accessToken,
      );
      const sessionId = (created.json.session as { id: string }).id;
      const inScanQr = async () => {
        const { json } = await postJson(
          cp.httpUrl,
          'switchboard.v1.SessionService/GetSession',
          { sessionId },
          tenant.accessToken,
        );
        const session = json.session as { status: string; epoch: string };
        return session.status === 'SESSION_STATUS_SCAN_QR' ? Number(session.epoch) : undefined;
      };
      const first = await eventually(inScanQr);
      const [staleBefore, refusedBefore, lateBefore] = [
        cp.app.sessions.reports.staleEvents,
        await refusedTotal('stale_event'),
        await metric('switchboard_worker_late_session_ends_total'),
      ];
      const warnedAbout = () =>
        lines.filter((l) => l.msg === 'stale session event refused' && l.sessionId === sessionId);

      const restart = await postJson(
        cp.httpUrl,
        'switchboard.v1.SessionService/RestartSession',
        { sessionId },
        tenant.accessToken,
      );
      expect(restart.status).toBe(200);
      // The agent's "ended: STOPPED" of the first attempt arrives after the epoch moved on.
      await eventually(async () =>
        (await metric('switchboard_worker_late_session_ends_total')) > lateBefore ? true : undefined,
      );
      expect(await eventually(async () => (((await inScanQr()) ?? 0) > first ? true : undefined))).toBe(true);
      expect(warnedAbout()).toEqual([]);
      expect(cp.app.sessions.reports.staleEvents).toBe(staleBefore);
      expect(await refusedTotal('stale_event')).toBe(refusedBefore);

      // A QR code of the first attempt is another matter: the worker would still be running it.
      await cp.app.sessions.reports.onWorkerEvent(agent.workerId, {
        sessionId,
        epoch: first,
        occurredAt: new Date(),
        event: { kind: 'qr', payload: 'old,a,b,c', expiresAt: new Date(), sequence: 9 },
      });
      expect(cp.app.sessions.reports.staleEvents).toBe(staleBefore + 1);
      expect(await refusedTotal('stale_event')).toBe(refusedBefore + 1);
      expect(warnedAbout()).toHaveLength(1);
    } finally {
      await agent.stop();
    }
  });

  it('serves the refusal counter at GET /metrics in Prometheus text format, by cause only', async () => {
    const response = await fetch(`${cp.httpUrl}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    expect(text).toContain('# TYPE switchboard_worker_events_refused_total counter');
    const series = text.split('\n').filter((line) => line.startsWith('switchboard_worker_events_refused_total{'));
    expect(series.map((line) => line.replace(/ \d+$/, '')).sort()).toEqual(
      [
        'invalid_message',
        'late_response',
        'session_gone',
        'stale_event',
        'unexpected_event',
        'unknown_ack',
        'unowned_session',
      ].map((cause) => `switchboard_worker_events_refused_total{cause="${cause}"}`),
    );
    // The protocol errors of the tests above were counted.
    expect(await refusedTotal('invalid_message')).toBeGreaterThanOrEqual(5);
  });

  it('writes the other rows of a flush when the database refuses one worker’s row, and logs that row without SQL', async () => {
    const one = await connectWorker(cp, joinToken, 'flush-good');
    const two = await connectWorker(cp, joinToken, 'flush-bad');
    const buffer = new HeartbeatBuffer(() => new WorkerRepository(cp.app.database.orm.em.fork()), logger);
    const at = new Date();
    const metrics = {
      cpuPercent: 3,
      rssBytes: 1000,
      heapUsedBytes: 10,
      heapTotalBytes: 20,
      loadAverage: [0, 0, 0] as [number, number, number],
      freeMemoryBytes: 1,
      totalMemoryBytes: 2,
      eventLoopLagMs: 0,
      sessionCount: 0,
      cpuCount: 1,
    };
    buffer.add({ workerId: one.workerId, streamId: 'stream-one', at, metrics });
    // What validation now keeps out of the buffer, as a worker sent it before.
    buffer.add({ workerId: two.workerId, streamId: 'stream-two', at, metrics: { ...metrics, cpuPercent: Number.NaN } });
    await buffer.flush();

    expect(await rollupsOf(one.workerId)).toHaveLength(1);
    expect(await rollupsOf(two.workerId)).toEqual([]);
    const dropped = lines.find((l) => /dropped that row/.test(l.msg ?? '') && l.workerId === two.workerId);
    expect(dropped).toBeDefined();
    expect(JSON.stringify(dropped)).not.toMatch(/insert into|NaN::float8/i);
    one.stream.end();
    two.stream.end();
  });
});
