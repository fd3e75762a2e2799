import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Code, createClient, type Interceptor } from '@connectrpc/connect';
import { createConnectTransport, createGrpcTransport } from '@connectrpc/connect-node';
import { EventService, type Event } from '../../gen/switchboard/v1/event_pb.js';
import { SessionStatus } from '../../gen/switchboard/v1/session_pb.js';
import type { Agent } from '../../agent/agent.js';
import { EventLog, type NewEvent } from '../../src/events/event-log.js';
import { createTestAgent } from '../support/agents.js';
import { bearer } from '../support/clients.js';
import { eventually, postJson, startControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { collect } from '../support/streams.js';
import { addMember, signUp, type TestTenant } from '../support/tenants.js';

/**
 * The tenant event log read back: ListEvents pages, StreamEvents replays
 * from a cursor then follows live events, over Connect (HTTP/JSON, as curl
 * would) and gRPC, on a replica other than the one that writes (the
 * announcement crosses Redis). Message events are appended here the way
 * the message paths append them (EventLog, in a transaction, announced
 * after commit); session events come from the real session lifecycle on a
 * sandbox agent.
 */
describe('event stream (two replicas, an agent, real PostgreSQL and Redis)', () => {
  let a: TestControlPlane;
  let b: TestControlPlane;
  let agent: Agent;
  let owner: TestTenant;
  let sessionId: string;
  let log: EventLog;

  const call = (token: string, path: string, body: unknown) =>
    postJson(a.httpUrl, `switchboard.v1.${path}`, body, token);
  const connectOnB = (interceptor: Interceptor) =>
    createClient(
      EventService,
      createConnectTransport({ baseUrl: b.httpUrl, httpVersion: '1.1', interceptors: [interceptor] }),
    );
  const grpcOnB = (interceptor: Interceptor) =>
    createClient(EventService, createGrpcTransport({ baseUrl: b.grpcUrl, interceptors: [interceptor] }));

  /** Appends `count` message.received events for the tenant in one transaction on A, announced after commit. */
  async function append(tenantId: string, count: number, from: number): Promise<void> {
    const events: NewEvent[] = Array.from({ length: count }, (_, i) => ({
      tenantId,
      type: 'message.received',
      sessionId: null,
      occurredAt: new Date(),
      data: { id: randomUUID(), chat: '+15550001111', text: `n${from + i}`, status: 'MESSAGE_STATUS_RECEIVED' },
    }));
    const announcement = await a.app.database.orm.em.fork().transactional((tx) => log.append(tx, events, new Date()));
    await log.announce(announcement);
  }

  const texts = (events: readonly Event[]) =>
    events.map((e) => (e.payload.case === 'message' ? e.payload.value.text : `(${e.type})`));

  beforeAll(async () => {
    a = await startControlPlane({ env: { SESSION_QUOTA_FREE: '10' } });
    // B polls often: one test checks an event written without an announcement still arrives.
    b = await startControlPlane({ replicaOf: a, env: { EVENT_STREAM_POLL_INTERVAL_MS: '300' } });
    log = new EventLog(a.app.store);
    agent = createTestAgent(a.grpcAddress, await a.joinToken(1), { capacity: 10 });
    agent.start();
    await agent.connected();
    owner = await signUp(a.httpUrl, 'events');
    const created = await call(owner.accessToken, 'SessionService/CreateSession', {
      name: 'front-desk',
      engine: 'ENGINE_SANDBOX',
    });
    sessionId = (created.json.session as { id: string }).id;
    await eventually(async () => {
      const got = await call(owner.accessToken, 'SessionService/GetSession', { sessionId });
      return (got.json.session as { status: string }).status === 'SESSION_STATUS_SCAN_QR' ? true : undefined;
    });
  });
  afterAll(async () => {
    await agent?.stop();
    await b?.close();
    await a?.close();
  });

  it('records session changes in order, with the QR code, and pages them with ListEvents', async () => {
    const listed: Record<string, unknown>[] = [];
    let cursor = '';
    for (let page = 0; page < 10; page++) {
      const got = await postJson(
        b.httpUrl,
        'switchboard.v1.EventService/ListEvents',
        { afterCursor: cursor, types: ['session.'], sessionId, pageSize: 2 },
        owner.accessToken,
      );
      expect(got.status).toBe(200);
      const events = (got.json.events as Record<string, unknown>[] | undefined) ?? [];
      listed.push(...events);
      cursor = got.json.nextCursor as string;
      if (events.length < 2) break;
    }
    expect(listed.map((e) => Number(e.sequence))).toEqual(listed.map((_, i) => i + 1));
    const statuses = listed.filter((e) => e.type === 'session.status').map((e) => e.sessionStatus);
    expect(statuses.slice(0, 3)).toEqual([
      { status: 'SESSION_STATUS_PENDING', reason: 'waiting for a worker' },
      { status: 'SESSION_STATUS_STARTING', previousStatus: 'SESSION_STATUS_PENDING' },
      { status: 'SESSION_STATUS_SCAN_QR', previousStatus: 'SESSION_STATUS_STARTING' },
    ]);
    const qr = listed.find((e) => e.type === 'session.qr') as { sessionQr: { qrPayload: string } } | undefined;
    expect(qr?.sessionQr.qrPayload).toBeTruthy();
    // The cursor of the last page continues where it ended: nothing new yet.
    const after = await postJson(
      b.httpUrl,
      'switchboard.v1.EventService/ListEvents',
      { afterCursor: cursor, types: ['session.'], sessionId },
      owner.accessToken,
    );
    expect(after.json.events ?? []).toEqual([]);
    expect(after.json.nextCursor).toBe(cursor);
  });

  it('records the link (WORKING with the number, linked_at set) and shows an injected inbound message in ListMessages', async () => {
    const created = await call(owner.accessToken, 'SessionService/CreateSession', {
      name: 'linked',
      engine: 'ENGINE_SANDBOX',
    });
    const linked = (created.json.session as { id: string }).id;
    const status = async () =>
      (
        (await call(owner.accessToken, 'SessionService/GetSession', { sessionId: linked })).json.session as {
          status: string;
        }
      ).status;
    await eventually(async () => ((await status()) === 'SESSION_STATUS_SCAN_QR' ? true : undefined));
    const scanned = await call(owner.accessToken, 'SandboxService/ScanQr', {
      sessionId: linked,
      phoneNumber: '+15550003333',
      pushName: 'Linked',
    });
    expect(scanned.status).toBe(200);
    await eventually(async () => ((await status()) === 'SESSION_STATUS_WORKING' ? true : undefined));

    const events = await postJson(
      b.httpUrl,
      'switchboard.v1.EventService/ListEvents',
      { sessionId: linked, types: ['session.status'] },
      owner.accessToken,
    );
    const working = (events.json.events as { sessionStatus: Record<string, string> }[]).at(-1)?.sessionStatus;
    expect(working).toMatchObject({
      status: 'SESSION_STATUS_WORKING',
      previousStatus: 'SESSION_STATUS_SCAN_QR',
      phoneNumber: expect.stringContaining('15550003333'),
    });
    const [row] = await a.app.database.orm.em
      .fork()
      .getConnection()
      .execute<{ linked_at: Date | null }[]>(`select "linked_at" from "session" where "id" = ?`, [linked]);
    expect(row?.linked_at).not.toBeNull();

    const injected = await call(owner.accessToken, 'SandboxService/InjectInbound', {
      sessionId: linked,
      from: '+15550004444',
      text: 'is anyone there?',
    });
    expect(injected.status).toBe(200);
    const inbound = await eventually(async () => {
      const page = await call(owner.accessToken, 'MessageService/ListMessages', {
        sessionId: linked,
        direction: 'MESSAGE_DIRECTION_INBOUND',
      });
      return (page.json.messages as Record<string, string>[] | undefined)?.[0];
    });
    expect(inbound).toMatchObject({
      text: 'is anyone there?',
      status: 'MESSAGE_STATUS_RECEIVED',
      whatsappMessageId: injected.json.whatsappMessageId,
    });
    // Another tenant cannot read it.
    const other = await signUp(a.httpUrl, 'nosy');
    const refused = await call(other.accessToken, 'MessageService/GetMessage', { messageId: inbound.id });
    expect(refused.status).toBe(404);
  });

  it('resumes from the last cursor after a disconnect: misses nothing, repeats nothing, in order (Connect JSON)', async () => {
    const tenant = await signUp(a.httpUrl, 'resume');
    const client = connectOnB(bearer(tenant.accessToken));
    await append(tenant.tenantId, 5, 0);

    const first = new AbortController();
    const received: Event[] = [];
    const reading = (async () => {
      for await (const res of client.streamEvents({ fromBeginning: true }, { signal: first.signal })) {
        if (res.event) received.push(res.event);
        // The client goes away mid-stream (breaking out cancels the call).
        if (received.length === 25) break;
      }
    })().catch((error: unknown) => error);
    // Live events while the stream runs: concurrent transactions, each announced after its commit.
    await Promise.all(Array.from({ length: 10 }, (_, i) => append(tenant.tenantId, 3, 5 + i * 3)));
    await reading;
    expect(received).toHaveLength(25);

    // Written while disconnected.
    await append(tenant.tenantId, 7, 35);
    const last = received.at(-1) as Event;
    const resumed = collect(client.streamEvents({ afterCursor: last.cursor }));
    await resumed.frame(() => resumed.frames.length === 42 - 25);
    const all = [...received, ...resumed.frames.map((f) => f.value.event as Event)];
    expect(all.map((e) => Number(e.sequence))).toEqual(Array.from({ length: 42 }, (_, i) => i + 1));
    expect(new Set(texts(all)).size).toBe(42);
    // Within one append the events keep their order.
    expect(texts(all).slice(0, 5)).toEqual(['n0', 'n1', 'n2', 'n3', 'n4']);
  });

  it('follows live events over gRPC with only new ones, and picks up an event whose announcement was lost', async () => {
    const tenant = await signUp(a.httpUrl, 'live');
    await append(tenant.tenantId, 2, 0);
    const stream = collect(grpcOnB(bearer(tenant.accessToken)).streamEvents({ types: ['message.received'] }));
    // Only new events: keep writing until the stream (once it is up) delivers one; the two
    // written before it opened are never replayed, and nothing after its start is skipped.
    let next = 2;
    await eventually(
      async () => {
        await append(tenant.tenantId, 1, next++);
        return stream.frames.length > 0 ? true : undefined;
      },
      10_000,
      100,
    );
    // The last one written (n<next-1>) is number `next`.
    await eventually(async () => (stream.frames.at(-1)?.value.event?.sequence === BigInt(next) ? true : undefined));
    const delivered = stream.frames.map((f) => Number(f.value.event?.sequence));
    expect(delivered[0]).toBeGreaterThan(2);
    expect(delivered).toEqual(delivered.map((_, i) => (delivered[0] as number) + i));

    // Committed without an announcement: the stream's poll finds it.
    await a.app.database.orm.em.fork().transactional((tx) =>
      log.append(
        tx,
        [
          {
            tenantId: tenant.tenantId,
            type: 'message.received',
            sessionId: null,
            occurredAt: new Date(),
            data: { text: 'quiet' },
          },
        ],
        new Date(),
      ),
    );
    const quiet = await stream.frame(
      (f) => f.event?.payload.case === 'message' && f.event.payload.value.text === 'quiet',
    );
    expect(Number(quiet.event?.sequence)).toBe(next + 1);
    expect(stream.frames.at(-2)?.value.event?.sequence).toBe(BigInt(next));
  });

  it('shows another tenant none of it, and refuses its session ids and cursors', async () => {
    const other = await signUp(a.httpUrl, 'other');
    const listed = await postJson(b.httpUrl, 'switchboard.v1.EventService/ListEvents', {}, other.accessToken);
    expect(listed.status).toBe(200);
    expect(listed.json.events ?? []).toEqual([]);

    const bySession = await postJson(
      b.httpUrl,
      'switchboard.v1.EventService/ListEvents',
      { sessionId },
      other.accessToken,
    );
    expect(bySession.status).toBe(404);
    const ownerPage = await postJson(
      b.httpUrl,
      'switchboard.v1.EventService/ListEvents',
      { pageSize: 1 },
      owner.accessToken,
    );
    const borrowed = await postJson(
      b.httpUrl,
      'switchboard.v1.EventService/ListEvents',
      { afterCursor: ownerPage.json.nextCursor },
      other.accessToken,
    );
    expect(borrowed.status).toBe(400);
    expect(borrowed.json.message).toMatch(/another tenant/);

    const client = grpcOnB(bearer(other.accessToken));
    const refused = collect(client.streamEvents({ sessionId }));
    expect((await refused.ended).error?.code).toBe(Code.NotFound);
    const garbled = collect(client.streamEvents({ afterCursor: 'bm90LWEtY3Vyc29y' }));
    expect((await garbled.ended).error?.code).toBe(Code.InvalidArgument);
    // Its own stream gets nothing of the owner's changes.
    const own = collect(client.streamEvents({ fromBeginning: true }));
    await call(owner.accessToken, 'SessionService/RestartSession', { sessionId });
    await append(owner.tenantId, 1, 0);
    // Then one of its own: once that arrives, anything of the owner's would have too.
    await append(other.tenantId, 1, 100);
    await own.frame(() => true);
    expect(texts(own.frames.map((f) => f.value.event as Event))).toEqual(['n100']);
  });

  it('leaves QR codes out for a viewer (also after a demotion mid-stream) and ends the stream on logout', async () => {
    const member = await addMember(a.httpUrl, owner, 'DEVELOPER');
    const filter = { sessionId, types: ['session.'] };
    const stream = collect(connectOnB(bearer(member.token)).streamEvents({ ...filter, fromBeginning: true }));
    // A developer may link accounts: the replay includes the QR codes shown so far.
    const logged = await postJson(b.httpUrl, 'switchboard.v1.EventService/ListEvents', filter, owner.accessToken);
    const backlog = (logged.json.events as unknown[]).length;
    await eventually(async () => (stream.frames.length >= backlog ? true : undefined));
    expect(stream.frames.some((f) => f.value.event?.type === 'session.qr')).toBe(true);

    await call(owner.accessToken, 'MemberService/UpdateMemberRole', { userId: member.userId, role: 'ROLE_VIEWER' });
    const demotedAt = stream.frames.length;
    await call(owner.accessToken, 'SessionService/RestartSession', { sessionId });
    await stream.frame(
      (f) => f.event?.payload.case === 'sessionStatus' && f.event.payload.value.status === SessionStatus.SCAN_QR,
      demotedAt,
    );
    expect(stream.frames.slice(demotedAt).filter((f) => f.value.event?.type === 'session.qr')).toEqual([]);

    expect((await call(member.token, 'AuthService/Logout', {})).status).toBe(200);
    expect((await stream.ended).error?.code).toBe(Code.Unauthenticated);
  });
});
