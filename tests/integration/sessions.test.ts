import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '@connectrpc/connect';
import { createConnectTransport, createGrpcTransport } from '@connectrpc/connect-node';
import { SessionService, SessionStatus, type WatchSessionResponse } from '../../gen/switchboard/v1/session_pb.js';
import { Engine } from '../../gen/switchboard/v1/fleet_pb.js';
import type { Agent } from '../../agent/agent.js';
import { createTestAgent } from '../support/agents.js';
import { bearer } from '../support/clients.js';
import { eventually, postJson, startControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { addMember, signUp, type TestTenant } from '../support/tenants.js';
import { RawAgentStream } from '../support/raw-stream.js';

const TIMING = {
  HEARTBEAT_INTERVAL_MS: '250',
  LEASE_TTL_MS: '1500',
  SWEEP_INTERVAL_MS: '100',
  FAILURE_GRACE_MS: '500',
  SESSION_QUOTA_FREE: '50',
};

interface JsonSession {
  id: string;
  status: string;
  statusReason?: string;
  workerId?: string;
  epoch?: string;
  account?: { phoneNumber?: string };
}

describe('sessions on sandbox workers (PostgreSQL + Redis + agents)', () => {
  let cp: TestControlPlane;
  let tenant: TestTenant;
  let other: TestTenant;
  let agent: Agent;
  const call = (token: string, path: string, body: unknown) =>
    postJson(cp.httpUrl, `switchboard.v1.${path}`, body, token);

  beforeAll(async () => {
    cp = await startControlPlane({ env: TIMING });
    tenant = await signUp(cp.httpUrl, 'sessions');
    other = await signUp(cp.httpUrl, 'intruder');
    agent = createTestAgent(cp.grpcAddress, await cp.joinToken(10), { capacity: 10 });
    agent.start();
    await agent.connected();
  });
  afterAll(async () => {
    await agent?.stop();
    await cp?.close();
  });

  const session = async (token: string, id: string): Promise<JsonSession> =>
    (await call(token, 'SessionService/GetSession', { sessionId: id })).json.session as JsonSession;
  const until = (token: string, id: string, status: string, timeoutMs = 10_000) =>
    eventually(async () => {
      const s = await session(token, id);
      return s.status === status ? s : undefined;
    }, timeoutMs);

  it('creates a session, streams its QR code, links it by scan, sends a message and reports delivered and read', async () => {
    const sessions = createClient(
      SessionService,
      createGrpcTransport({ baseUrl: cp.grpcUrl, interceptors: [bearer(tenant.accessToken)] }),
    );
    const created = await sessions.createSession({ name: 'support', engine: Engine.SANDBOX });
    const id = created.session?.id ?? '';
    expect(created.session?.status).toBe(SessionStatus.PENDING);

    // WatchSession: the session as it is, then changes, including a fresh QR code.
    const abort = new AbortController();
    const stream = sessions.watchSession({ sessionId: id }, { signal: abort.signal })[Symbol.asyncIterator]();
    const withQr = await eventually(async (): Promise<WatchSessionResponse | undefined> => {
      const next: IteratorResult<WatchSessionResponse> = await stream.next();
      const response = next.done ? undefined : next.value;
      return response?.qrCode?.payload ? response : undefined;
    }, 10_000);
    expect(withQr.session?.status).toBe(SessionStatus.SCAN_QR);
    expect(withQr.session?.workerId).toBe(agent.workerId);
    expect(withQr.qrCode?.payload.split(',')).toHaveLength(4);

    // GetQrCode renders it (PNG and SVG), with its expiry.
    const qr = await call(tenant.accessToken, 'SessionService/GetQrCode', { sessionId: id });
    expect(qr.status).toBe(200);
    expect(qr.json.payload).toBe(withQr.qrCode?.payload);
    expect(
      Buffer.from(qr.json.png as string, 'base64')
        .subarray(1, 4)
        .toString(),
    ).toBe('PNG');
    expect(qr.json.svg).toContain('<svg');

    // The simulated phone scans it: WORKING, with the linked account.
    const scan = await call(tenant.accessToken, 'SandboxService/ScanQr', {
      sessionId: id,
      phoneNumber: '+15550001111',
      pushName: 'Support',
    });
    expect(scan.status).toBe(200);
    const working = await until(tenant.accessToken, id, 'SESSION_STATUS_WORKING');
    expect(working.account?.phoneNumber).toContain('15550001111');
    abort.abort();

    // SendText accepts it QUEUED; the worker sends it and the sandbox reports delivered, then read.
    const sent = await call(tenant.accessToken, 'MessageService/SendText', {
      sessionId: id,
      to: '+15550002222',
      text: 'hello from switchboard',
      idempotencyKey: 'order-42',
    });
    expect(sent.status).toBe(200);
    const message = sent.json.message as { id: string; status: string };
    expect(message.status).toBe('MESSAGE_STATUS_QUEUED');
    const read = await eventually(async () => {
      const { json } = await call(tenant.accessToken, 'MessageService/GetMessage', { messageId: message.id });
      const m = json.message as { status: string; whatsappMessageId: string };
      return m.status === 'MESSAGE_STATUS_READ' ? m : undefined;
    }, 10_000);
    expect(read.whatsappMessageId).toMatch(/^3EB0[0-9A-F]{16}$/);

    // The same idempotency key returns the same message: not sent twice.
    const again = await call(tenant.accessToken, 'MessageService/SendText', {
      sessionId: id,
      to: '+15550002222',
      text: 'hello from switchboard',
      idempotencyKey: 'order-42',
    });
    expect((again.json.message as { id: string; whatsappMessageId: string }).whatsappMessageId).toBe(
      read.whatsappMessageId,
    );

    // A bad recipient is the worker's refusal: the message ends FAILED with the reason, not a crash.
    const bad = await call(tenant.accessToken, 'MessageService/SendText', {
      sessionId: id,
      to: 'not-a-number',
      text: 'x',
    });
    const badId = (bad.json.message as { id: string }).id;
    const failed = await eventually(async () => {
      const { json } = await call(tenant.accessToken, 'MessageService/GetMessage', { messageId: badId });
      const m = json.message as { status: string; failureReason?: string };
      return m.status === 'MESSAGE_STATUS_FAILED' ? m : undefined;
    }, 10_000);
    expect(failed.failureReason).toContain('INVALID_ARGUMENT');

    // Another tenant can neither see nor drive it, nor read its messages.
    for (const [path, body] of [
      ['SessionService/GetSession', { sessionId: id }],
      ['SessionService/StopSession', { sessionId: id }],
      ['SessionService/GetQrCode', { sessionId: id }],
      ['SessionService/RequestPairingCode', { sessionId: id, phoneNumber: '+15550003333' }],
      ['SessionService/RestartSession', { sessionId: id }],
      ['SessionService/LogoutSession', { sessionId: id }],
      ['SessionService/DeleteSession', { sessionId: id }],
      ['SessionService/StartSession', { sessionId: id }],
      ['SandboxService/ScanQr', { sessionId: id, phoneNumber: '+15550003333' }],
      ['SandboxService/InjectInbound', { sessionId: id, from: '+15550003333', text: 'hi' }],
      ['MessageService/SendText', { sessionId: id, to: '+15550002222', text: 'spoof' }],
      ['MessageService/GetMessage', { messageId: message.id }],
    ] as const) {
      const { json } = await call(other.accessToken, path, body);
      expect(json.code, path).toBe('not_found');
    }
    const watchOther = createClient(
      SessionService,
      createConnectTransport({ baseUrl: cp.httpUrl, httpVersion: '1.1', interceptors: [bearer(other.accessToken)] }),
    );
    await expect(watchOther.watchSession({ sessionId: id })[Symbol.asyncIterator]().next()).rejects.toThrow(
      /not found/i,
    );
    const { json: list } = await call(other.accessToken, 'SessionService/ListSessions', {});
    expect(list.sessions ?? []).toEqual([]);
    expect((await session(tenant.accessToken, id)).status).toBe('SESSION_STATUS_WORKING');

    // WatchSession over Connect (HTTP/1.1) too: the session as it is now.
    const overConnect = createClient(
      SessionService,
      createConnectTransport({ baseUrl: cp.httpUrl, httpVersion: '1.1', interceptors: [bearer(tenant.accessToken)] }),
    );
    const connectAbort = new AbortController();
    const connectStream = overConnect.watchSession({ sessionId: id }, { signal: connectAbort.signal });
    const first = await connectStream[Symbol.asyncIterator]().next();
    expect(first.done ? undefined : first.value.session?.status).toBe(SessionStatus.WORKING);
    connectAbort.abort();

    // Inbound messages from the sandbox are stored for the session.
    const injected = await call(tenant.accessToken, 'SandboxService/InjectInbound', {
      sessionId: id,
      from: '+15550004444',
      text: 'hi there',
    });
    expect(injected.status).toBe(200);
    expect(injected.json.whatsappMessageId).toBeTruthy();
  });

  const linked = async (name: string): Promise<string> => {
    const { json } = await call(tenant.accessToken, 'SessionService/CreateSession', { name, engine: 'ENGINE_SANDBOX' });
    const id = (json.session as JsonSession).id;
    await until(tenant.accessToken, id, 'SESSION_STATUS_SCAN_QR');
    await call(tenant.accessToken, 'SandboxService/ScanQr', { sessionId: id, phoneNumber: '+15550005555' });
    await until(tenant.accessToken, id, 'SESSION_STATUS_WORKING');
    return id;
  };

  it('resumes a linked session after a restart from its encrypted auth state, without a new scan', async () => {
    const id = await linked('resumable');
    const before = await session(tenant.accessToken, id);
    const restarted = await call(tenant.accessToken, 'SessionService/RestartSession', { sessionId: id });
    expect(restarted.status).toBe(200);
    const after = await until(tenant.accessToken, id, 'SESSION_STATUS_WORKING');
    expect(Number(after.epoch)).toBeGreaterThan(Number(before.epoch));
    expect(after.account?.phoneNumber).toContain('15550005555');
    // Stored encrypted: the bytes at rest are not the agent's JSON snapshot.
    const [row] = await cp.app.database.orm.em
      .fork()
      .getConnection()
      .execute<{ ciphertext: Buffer; key_id: string; version: number }[]>(
        'select ciphertext, key_id, version from session_auth_state where session_id = ?',
        [id],
      );
    expect(row?.version).toBeGreaterThanOrEqual(1);
    // The snapshot names the linked number; at rest it must not be readable.
    expect(row?.ciphertext.toString('latin1')).not.toContain('15550005555');
    expect(row?.key_id).toBeTruthy();

    // Logout unlinks and wipes the credentials: starting again needs a new link.
    const out = await call(tenant.accessToken, 'SessionService/LogoutSession', { sessionId: id });
    expect((out.json.session as JsonSession).status).toBe('SESSION_STATUS_LOGGED_OUT');
    const [gone] = await cp.app.database.orm.em
      .fork()
      .getConnection()
      .execute<{ n: string }[]>('select count(*) as n from session_auth_state where session_id = ?', [id]);
    expect(Number(gone?.n)).toBe(0);
    await call(tenant.accessToken, 'SessionService/StartSession', { sessionId: id });
    await until(tenant.accessToken, id, 'SESSION_STATUS_SCAN_QR');
    await call(tenant.accessToken, 'SessionService/DeleteSession', { sessionId: id });
  });

  it('moves a linked session to another worker when its worker stops, without a new scan', async () => {
    const id = await linked('movable');
    const from = (await session(tenant.accessToken, id)).workerId;
    expect(from).toBe(agent.workerId);
    const spare = createTestAgent(cp.grpcAddress, await cp.joinToken(1), { capacity: 10 });
    spare.start();
    try {
      await spare.connected();
      await agent.stop(); // a clean stop: the agent ends its sessions and says goodbye
      const moved = await eventually(async () => {
        const s = await session(tenant.accessToken, id);
        return s.status === 'SESSION_STATUS_WORKING' && s.workerId === spare.workerId ? s : undefined;
      }, 15_000);
      expect(moved.account?.phoneNumber).toContain('15550005555');
    } finally {
      // Bring a worker with the original's identity back for the tests that follow.
      agent = createTestAgent(cp.grpcAddress, undefined, {
        workerName: agent.options.workerName,
        credentialFile: agent.options.credentialFile,
        capacity: 10,
      });
      agent.start();
      await agent.connected();
      await spare.stop();
      await call(tenant.accessToken, 'SessionService/DeleteSession', { sessionId: id });
    }
  });

  it('moves sessions off a drained worker, stopping each there before it runs elsewhere', async () => {
    const id = await linked('drained');
    expect((await session(tenant.accessToken, id)).workerId).toBe(agent.workerId);
    const spare = createTestAgent(cp.grpcAddress, await cp.joinToken(1), { capacity: 10 });
    spare.start();
    try {
      await spare.connected();
      const watcher = createClient(
        SessionService,
        createGrpcTransport({ baseUrl: cp.grpcUrl, interceptors: [bearer(tenant.accessToken)] }),
      );
      const abort = new AbortController();
      const states: string[] = [];
      const watching = (async () => {
        try {
          for await (const change of watcher.watchSession({ sessionId: id }, { signal: abort.signal })) {
            const status = SessionStatus[change.session?.status ?? 0] ?? 'UNKNOWN';
            if (states.at(-1) !== status) states.push(status);
            if (status === 'WORKING' && change.session?.workerId === spare.workerId) return;
          }
        } catch {
          // aborted below if the move never completes
        }
      })();
      const drained = await postJson(
        cp.httpUrl,
        'switchboard.v1.AdminService/DrainWorker',
        { workerId: agent.workerId, reason: 'rack move' },
        cp.adminToken,
      );
      expect(drained.status).toBe(200);
      const moved = await eventually(async () => {
        const s = await session(tenant.accessToken, id);
        return s.status === 'SESSION_STATUS_WORKING' && s.workerId === spare.workerId ? s : undefined;
      }, 15_000);
      expect(moved.account?.phoneNumber).toContain('15550005555');
      expect(agent.sessions.count).toBe(0);
      // Watchers saw every step, in order: stopped there, queued, placed, resumed without a QR code.
      setTimeout(() => abort.abort(), 5000);
      await watching;
      expect(states).toEqual(['WORKING', 'PENDING', 'STARTING', 'WORKING']);
    } finally {
      await postJson(
        cp.httpUrl,
        'switchboard.v1.AdminService/UncordonWorker',
        { workerId: agent.workerId },
        cp.adminToken,
      );
      await call(tenant.accessToken, 'SessionService/DeleteSession', { sessionId: id });
      await spare.stop();
    }
  });

  it('honours soft affinities: preferred labels attract a session, negative weights repel it', async () => {
    // Two empty workers that differ only in their zone; the loaded one is cordoned meanwhile.
    const admin = (method: string, body: unknown) =>
      postJson(cp.httpUrl, `switchboard.v1.AdminService/${method}`, body, cp.adminToken);
    const inA = createTestAgent(cp.grpcAddress, await cp.joinToken(1), { capacity: 10, labels: { zone: 'pref-a' } });
    const inB = createTestAgent(cp.grpcAddress, await cp.joinToken(1), { capacity: 10, labels: { zone: 'pref-b' } });
    inA.start();
    inB.start();
    await admin('CordonWorker', { workerId: agent.workerId, reason: 'affinity test' });
    try {
      await Promise.all([inA.connected(), inB.connected()]);
      const place = async (name: string, weight: number) => {
        const { json } = await call(tenant.accessToken, 'SessionService/CreateSession', {
          name,
          engine: 'ENGINE_SANDBOX',
          affinities: [{ labelSelector: 'zone=pref-b', weight }],
        });
        const id = (json.session as JsonSession).id;
        const placed = await until(tenant.accessToken, id, 'SESSION_STATUS_SCAN_QR');
        await call(tenant.accessToken, 'SessionService/DeleteSession', { sessionId: id });
        return placed.workerId;
      };
      expect(await place('attracted', 100)).toBe(inB.workerId);
      expect(await place('repelled', -100)).toBe(inA.workerId);
      const zero = await call(tenant.accessToken, 'SessionService/CreateSession', {
        name: 'pointless',
        engine: 'ENGINE_SANDBOX',
        affinities: [{ labelSelector: 'zone=pref-b', weight: 0 }],
      });
      expect(zero.json.code).toBe('invalid_argument');
    } finally {
      await admin('UncordonWorker', { workerId: agent.workerId });
      await inA.stop();
      await inB.stop();
    }
  });

  it('links by pairing code instead of QR', async () => {
    const { json } = await call(tenant.accessToken, 'SessionService/CreateSession', {
      name: 'paired',
      engine: 'ENGINE_SANDBOX',
    });
    const id = (json.session as JsonSession).id;
    await until(tenant.accessToken, id, 'SESSION_STATUS_SCAN_QR');
    const pairing = await call(tenant.accessToken, 'SessionService/RequestPairingCode', {
      sessionId: id,
      phoneNumber: '+15550006666',
    });
    expect(pairing.status).toBe(200);
    const code = pairing.json.code as string;
    expect(code).toMatch(/^[1-9A-HJ-NP-TV-Z]{8}$/);
    // Scanning needs the phone's number; a pairing code already names it.
    const neither = await call(tenant.accessToken, 'SandboxService/ScanQr', { sessionId: id });
    expect(neither.json.code).toBe('invalid_argument');
    expect(neither.json.message).toContain('phone_number is required');
    const entered = await call(tenant.accessToken, 'SandboxService/ScanQr', { sessionId: id, pairingCode: code });
    expect(entered.status).toBe(200);
    const working = await until(tenant.accessToken, id, 'SESSION_STATUS_WORKING');
    expect(working.account?.phoneNumber).toContain('15550006666');
    await call(tenant.accessToken, 'SessionService/DeleteSession', { sessionId: id });
  });

  it('shows QR codes only to roles that may link the session, and ends WatchSession when the session is deleted', async () => {
    const viewer = await addMember(cp.httpUrl, tenant, 'VIEWER');
    const { json } = await call(tenant.accessToken, 'SessionService/CreateSession', {
      name: 'viewed',
      engine: 'ENGINE_SANDBOX',
    });
    const id = (json.session as JsonSession).id;
    await until(tenant.accessToken, id, 'SESSION_STATUS_SCAN_QR');
    expect((await call(viewer.token, 'SessionService/GetQrCode', { sessionId: id })).json.code).toBe(
      'permission_denied',
    );
    const asViewer = createClient(
      SessionService,
      createGrpcTransport({ baseUrl: cp.grpcUrl, interceptors: [bearer(viewer.token)] }),
    );
    const watched = asViewer.watchSession({ sessionId: id })[Symbol.asyncIterator]();
    const first = await watched.next();
    expect(first.done ? undefined : first.value.session?.status).toBe(SessionStatus.SCAN_QR);
    expect(first.done ? 'done' : first.value.qrCode).toBeUndefined();

    await call(tenant.accessToken, 'SessionService/DeleteSession', { sessionId: id });
    const end = await eventually(async () => {
      const next = await watched.next();
      return next.done ? next : undefined;
    }, 5000);
    expect(end.done).toBe(true);
  });

  it('refuses commands in the wrong state with FAILED_PRECONDITION and changes nothing', async () => {
    const { json } = await call(tenant.accessToken, 'SessionService/CreateSession', {
      name: 'wrong-state',
      engine: 'ENGINE_SANDBOX',
    });
    const id = (json.session as JsonSession).id;
    await until(tenant.accessToken, id, 'SESSION_STATUS_SCAN_QR');
    const send = await call(tenant.accessToken, 'MessageService/SendText', {
      sessionId: id,
      to: '+15550002222',
      text: 'x',
    });
    expect(send.json.code).toBe('failed_precondition');
    const logout = await call(tenant.accessToken, 'SessionService/LogoutSession', { sessionId: id });
    expect(logout.json.code).toBe('failed_precondition');
    expect((await session(tenant.accessToken, id)).status).toBe('SESSION_STATUS_SCAN_QR');

    const stopped = await call(tenant.accessToken, 'SessionService/StopSession', { sessionId: id });
    expect((stopped.json.session as JsonSession).status).toBe('SESSION_STATUS_STOPPED');
    const { json: audit } = await call(tenant.accessToken, 'AuditService/ListAuditEvents', {
      actionPrefix: 'session.',
    });
    const mine = (audit.events as { action: string; targetId: string }[]).filter((e) => e.targetId === id);
    expect(mine.map((e) => e.action)).toEqual(['session.stop', 'session.created']);
    const qr = await call(tenant.accessToken, 'SessionService/GetQrCode', { sessionId: id });
    expect(qr.json.code).toBe('failed_precondition');
    expect((await call(tenant.accessToken, 'SessionService/DeleteSession', { sessionId: id })).status).toBe(200);
    expect((await call(tenant.accessToken, 'SessionService/GetSession', { sessionId: id })).json.code).toBe(
      'not_found',
    );
  });

  it('refuses an event with a stale epoch and keeps the session as it was', async () => {
    const { json } = await call(tenant.accessToken, 'SessionService/CreateSession', {
      name: 'fenced',
      engine: 'ENGINE_SANDBOX',
    });
    const id = (json.session as JsonSession).id;
    const before = await until(tenant.accessToken, id, 'SESSION_STATUS_SCAN_QR');
    const staleBefore = cp.app.sessions.reports.staleEvents;
    // The worker that runs it reports for an older attempt: refused.
    await cp.app.sessions.reports.onWorkerEvent(agent.workerId, {
      sessionId: id,
      epoch: Number(before.epoch) - 1,
      occurredAt: new Date(),
      event: { kind: 'connected', jid: '1@s.whatsapp.net', phoneNumber: '+1', pushName: 'impostor' },
    });
    // Another worker reports with the current epoch: refused too.
    await cp.app.sessions.reports.onWorkerEvent('00000000-0000-4000-8000-000000000000', {
      sessionId: id,
      epoch: Number(before.epoch),
      occurredAt: new Date(),
      event: { kind: 'connected', jid: '1@s.whatsapp.net', phoneNumber: '+1', pushName: 'impostor' },
    });
    expect(cp.app.sessions.reports.staleEvents).toBe(staleBefore + 2);
    const after = await session(tenant.accessToken, id);
    expect(after.status).toBe('SESSION_STATUS_SCAN_QR');
    expect(after.account).toBeUndefined();
    await call(tenant.accessToken, 'SessionService/DeleteSession', { sessionId: id });
  });

  it('refuses a stale epoch sent by a worker over its stream, and applies the current one', async () => {
    const raw = new RawAgentStream(cp.grpcUrl, await cp.joinToken(1));
    raw.hello(`raw-${Date.now().toString(36)}`);
    const welcome = await raw.next();
    expect(welcome.payload.case).toBe('welcome');
    let sequence = 0n;
    const beat = setInterval(() => raw.heartbeat((sequence += 1n)), 200);
    try {
      // Only the raw worker carries zone=raw.
      const { json } = await call(tenant.accessToken, 'SessionService/CreateSession', {
        name: 'raw-fenced',
        engine: 'ENGINE_SANDBOX',
        labelSelector: 'zone=raw',
      });
      const id = (json.session as JsonSession).id;
      // The next assignment, acknowledging the commands before it (a restart stops the session first).
      const nextAssignment = async () => {
        for (;;) {
          const command = await raw.next();
          if (command.payload.case === 'assignSession') {
            expect(command.payload.value.sessionId).toBe(id);
            raw.acknowledge(command);
            return command.payload.value.epoch;
          }
          if (command.payload.case !== 'heartbeatAck') raw.acknowledge(command);
        }
      };
      const first = await nextAssignment();
      // A second attempt, so the first one's epoch is stale (epochs start at 1; 0 is malformed, not stale).
      // (read while the restart runs: it waits for the worker to acknowledge the StopSession)
      const second = nextAssignment();
      expect((await call(tenant.accessToken, 'SessionService/RestartSession', { sessionId: id })).status).toBe(200);
      const epoch = await second;
      expect(epoch).toBe(first + 1);

      const staleBefore = cp.app.sessions.reports.staleEvents;
      // (the events below carry the epoch the AssignSession gave)
      const qrEvent = (e: number) => ({
        case: 'sessionEvent' as const,
        value: {
          sessionId: id,
          epoch: e,
          event: { case: 'qr' as const, value: { payload: 'ref,a,b,c', sequence: 1 } },
        },
      });
      raw.send(qrEvent(first));
      await eventually(async () => (cp.app.sessions.reports.staleEvents > staleBefore ? true : undefined), 5000);
      expect((await session(tenant.accessToken, id)).status).toBe('SESSION_STATUS_STARTING');

      raw.send(qrEvent(epoch));
      await until(tenant.accessToken, id, 'SESSION_STATUS_SCAN_QR', 5000);
      raw.send({
        case: 'sessionEvent',
        value: {
          sessionId: id,
          epoch,
          event: { case: 'connected', value: { jid: '15550007777@s.whatsapp.net', phoneNumber: '15550007777' } },
        },
      });
      await until(tenant.accessToken, id, 'SESSION_STATUS_WORKING', 5000);

      // A send is accepted QUEUED and handed to the worker in a DispatchMessages frame, under the epoch.
      const sending = await call(tenant.accessToken, 'MessageService/SendText', {
        sessionId: id,
        to: '+15550002222',
        text: 'into the void',
        idempotencyKey: 'void-1',
      });
      expect((sending.json.message as { status: string }).status).toBe('MESSAGE_STATUS_QUEUED');
      let dispatch;
      do dispatch = await raw.next();
      while (dispatch.payload.case !== 'dispatchMessages');
      expect(dispatch.payload.value.messages.map((m) => [m.sessionId, m.epoch])).toEqual([[id, epoch]]);
    } finally {
      clearInterval(beat);
      raw.cancel();
    }
  });
});

describe('placement', () => {
  let cp: TestControlPlane;
  let tenant: TestTenant;
  beforeAll(async () => {
    cp = await startControlPlane({ env: { ...TIMING, SESSION_QUOTA_FREE: '13' } });
    tenant = await signUp(cp.httpUrl, 'placement');
  });
  afterAll(async () => {
    await cp?.close();
  });
  const call = (path: string, body: unknown) =>
    postJson(cp.httpUrl, `switchboard.v1.${path}`, body, tenant.accessToken);

  it('keeps sessions PENDING without capacity, places them when workers join, and never oversubscribes under concurrent creates', async () => {
    const created = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        call('SessionService/CreateSession', { name: `s-${i}`, engine: 'ENGINE_SANDBOX' }).then(
          ({ json }) => (json.session as JsonSession).id,
        ),
      ),
    );
    const { json: waiting } = await call('SessionService/ListSessions', { status: 'SESSION_STATUS_PENDING' });
    expect((waiting.sessions as JsonSession[]).length).toBe(12);
    expect((waiting.sessions as JsonSession[])[0]?.statusReason).toMatch(/worker/i);

    const small = createTestAgent(cp.grpcAddress, await cp.joinToken(2), { capacity: 5 });
    const large = createTestAgent(cp.grpcAddress, await cp.joinToken(2), { capacity: 4 });
    small.start();
    large.start();
    try {
      await Promise.all([small.connected(), large.connected()]);
      const placed = await eventually(async () => {
        const { json } = await call('SessionService/ListSessions', { pageSize: 100 });
        const all = json.sessions as JsonSession[];
        const assigned = all.filter((s) => s.workerId);
        return assigned.length === 9 ? all : undefined;
      }, 15_000);
      const perWorker = new Map<string, number>();
      for (const s of placed) if (s.workerId) perWorker.set(s.workerId, (perWorker.get(s.workerId) ?? 0) + 1);
      expect(perWorker.get(small.workerId)).toBe(5);
      expect(perWorker.get(large.workerId)).toBe(4);
      expect(placed.filter((s) => s.status === 'SESSION_STATUS_PENDING')).toHaveLength(3);
      expect(created).toHaveLength(12);

      // The plan allows 13: of five concurrent creates exactly one gets the last place.
      const more = await Promise.all(
        Array.from({ length: 5 }, (_, i) =>
          call('SessionService/CreateSession', { name: `extra-${i}`, engine: 'ENGINE_SANDBOX' }),
        ),
      );
      expect(more.filter((r) => r.status === 200)).toHaveLength(1);
      for (const refused of more.filter((r) => r.status !== 200)) expect(refused.json.code).toBe('resource_exhausted');
    } finally {
      await small.stop();
      await large.stop();
    }
  });
});
