import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../lib/clock.js';
import { RetentionPurge } from '../../src/messaging/retention-purge.js';
import { postJson, startControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { signUp, type TestTenant } from '../support/tenants.js';

interface ApiMessage {
  id: string;
  chat: string;
  direction: string;
  status: string;
  text: string;
  idempotencyKey?: string;
  sender?: string;
  type?: string;
  sentAt?: string;
  deliveredAt?: string;
  heldUntil?: string;
  heldReason?: string;
  failureReason?: string;
  createdAt: string;
}

/**
 * Reading back history: ListMessages, GetMessage and ListChats over
 * Connect JSON (as curl would) on real PostgreSQL. Rows are written the
 * way the send pipeline and the inbound path store them (plain SQL), so
 * the reads are tested on their own.
 */
describe('message history (real PostgreSQL and Redis)', () => {
  let cp: TestControlPlane;
  let tenant: TestTenant;
  let other: TestTenant;
  let sessionId: string;
  let otherSessionId: string;
  const base = new Date('2026-11-01T12:00:00Z');
  const call = (token: string, method: string, body: unknown) =>
    postJson(cp.httpUrl, `switchboard.v1.MessageService/${method}`, body, token);
  const sql = (text: string, params: unknown[] = []) =>
    cp.app.database.orm.em.fork().getConnection().execute(text, params);

  async function insertMessage(input: {
    tenantId: string;
    sessionId: string;
    chat: string;
    direction?: 'OUTBOUND' | 'INBOUND';
    status?: string;
    text?: string;
    at: Date;
    extra?: Record<string, unknown>;
  }): Promise<string> {
    const id = randomUUID();
    const extra = input.extra ?? {};
    await sql(
      `insert into "message" ("id", "tenant_id", "session_id", "direction", "whatsapp_message_id", "chat", "text", "status",
         "idempotency_key", "sender", "sent_at", "delivered_at", "held_until", "held_reason", "failure_reason", "created_at", "updated_at")
       values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [
        id,
        input.tenantId,
        input.sessionId,
        input.direction ?? 'OUTBOUND',
        extra.whatsappMessageId ?? null,
        input.chat,
        input.text ?? `hello ${input.chat}`,
        input.status ?? 'QUEUED',
        extra.idempotencyKey ?? null,
        extra.sender ?? '',
        extra.sentAt ?? null,
        extra.deliveredAt ?? null,
        extra.heldUntil ?? null,
        extra.heldReason ?? '',
        extra.failureReason ?? '',
        input.at,
        input.at,
      ],
    );
    return id;
  }

  const createSession = async (owner: TestTenant, name: string) => {
    const created = await postJson(
      cp.httpUrl,
      'switchboard.v1.SessionService/CreateSession',
      { name, engine: 'ENGINE_SANDBOX' },
      owner.accessToken,
    );
    return (created.json.session as { id: string }).id;
  };

  beforeAll(async () => {
    cp = await startControlPlane({ env: { SESSION_QUOTA_FREE: '20' } });
    tenant = await signUp(cp.httpUrl, 'history');
    other = await signUp(cp.httpUrl, 'intruder');
    sessionId = await createSession(tenant, 'front-desk');
    otherSessionId = await createSession(other, 'elsewhere');
  });
  afterAll(async () => {
    await cp?.close();
  });

  it('returns every field of a message with GetMessage, and refuses another tenant’s message', async () => {
    const id = await insertMessage({
      tenantId: tenant.tenantId,
      sessionId,
      chat: '+15550000001',
      status: 'DELIVERED',
      at: base,
      extra: {
        idempotencyKey: 'order-17',
        sender: '+15559990000',
        whatsappMessageId: 'WA-1',
        sentAt: new Date(base.getTime() + 1000),
        deliveredAt: new Date(base.getTime() + 2000),
      },
    });
    const got = await call(tenant.accessToken, 'GetMessage', { messageId: id });
    expect(got.status).toBe(200);
    const message = got.json.message as ApiMessage & { whatsappMessageId: string };
    expect(message).toMatchObject({
      id,
      chat: '+15550000001',
      status: 'MESSAGE_STATUS_DELIVERED',
      direction: 'MESSAGE_DIRECTION_OUTBOUND',
      idempotencyKey: 'order-17',
      sender: '+15559990000',
      type: 'text',
      whatsappMessageId: 'WA-1',
      sentAt: '2026-11-01T12:00:01Z',
      deliveredAt: '2026-11-01T12:00:02Z',
    });

    const held = await insertMessage({
      tenantId: tenant.tenantId,
      sessionId,
      chat: '+15550000002',
      at: base,
      extra: { heldUntil: new Date(base.getTime() + 6000), heldReason: 'new recipient: one message per 6 s' },
    });
    const heldMessage = (await call(tenant.accessToken, 'GetMessage', { messageId: held })).json.message as ApiMessage;
    expect(heldMessage).toMatchObject({
      status: 'MESSAGE_STATUS_QUEUED',
      heldUntil: '2026-11-01T12:00:06Z',
      heldReason: 'new recipient: one message per 6 s',
    });

    const refused = await call(other.accessToken, 'GetMessage', { messageId: id });
    expect(refused.status).toBe(404);
    expect(refused.json.code).toBe('not_found');
  });

  it('pages newest first and stays stable while messages arrive between pages', async () => {
    const session = await createSession(tenant, 'pager');
    const existing: string[] = [];
    for (let i = 0; i < 23; i++) {
      existing.push(
        await insertMessage({
          tenantId: tenant.tenantId,
          sessionId: session,
          chat: `+1555100${String(i % 3)}`,
          at: new Date(base.getTime() + i * 1000),
        }),
      );
    }
    const seen: string[] = [];
    let token = '';
    let pages = 0;
    do {
      const page = await call(tenant.accessToken, 'ListMessages', {
        sessionId: session,
        pageSize: 5,
        pageToken: token,
      });
      expect(page.status).toBe(200);
      seen.push(...((page.json.messages as ApiMessage[] | undefined) ?? []).map((m) => m.id));
      token = (page.json.nextPageToken as string | undefined) ?? '';
      pages++;
      // Newer messages arrive while the client pages: they belong before its cursor, not in later pages.
      await Promise.all(
        [0, 1].map(() =>
          insertMessage({ tenantId: tenant.tenantId, sessionId: session, chat: '+15551000', at: new Date() }),
        ),
      );
    } while (token !== '');
    expect(pages).toBe(5);
    expect(seen).toEqual([...existing].reverse());
  });

  it('filters by chat, direction, status and time range', async () => {
    const session = await createSession(tenant, 'filters');
    const at = (s: number) => new Date(base.getTime() + s * 1000);
    const m = {
      outA: await insertMessage({
        tenantId: tenant.tenantId,
        sessionId: session,
        chat: 'A',
        status: 'READ',
        at: at(1),
      }),
      inA: await insertMessage({
        tenantId: tenant.tenantId,
        sessionId: session,
        chat: 'A',
        direction: 'INBOUND',
        status: 'RECEIVED',
        at: at(2),
      }),
      outB: await insertMessage({
        tenantId: tenant.tenantId,
        sessionId: session,
        chat: 'B',
        status: 'FAILED',
        at: at(3),
      }),
      outB2: await insertMessage({
        tenantId: tenant.tenantId,
        sessionId: session,
        chat: 'B',
        status: 'SENT',
        at: at(4),
      }),
    };
    const ids = async (filter: Record<string, unknown>) => {
      const page = await call(tenant.accessToken, 'ListMessages', { sessionId: session, ...filter });
      expect(page.status).toBe(200);
      return ((page.json.messages as ApiMessage[] | undefined) ?? []).map((x) => x.id);
    };
    expect(await ids({})).toEqual([m.outB2, m.outB, m.inA, m.outA]);
    expect(await ids({ chat: 'A' })).toEqual([m.inA, m.outA]);
    expect(await ids({ direction: 'MESSAGE_DIRECTION_INBOUND' })).toEqual([m.inA]);
    expect(await ids({ statuses: ['MESSAGE_STATUS_FAILED', 'MESSAGE_STATUS_READ'] })).toEqual([m.outB, m.outA]);
    // created_after is inclusive, created_before exclusive.
    expect(await ids({ createdAfter: at(2).toISOString(), createdBefore: at(4).toISOString() })).toEqual([
      m.outB,
      m.inA,
    ]);
    expect(await ids({ chat: 'B', statuses: ['MESSAGE_STATUS_SENT'] })).toEqual([m.outB2]);
  });

  it('refuses another tenant’s session and a page token it did not issue, writing nothing', async () => {
    for (const method of ['ListMessages', 'ListChats']) {
      const refused = await call(other.accessToken, method, { sessionId });
      expect(refused.status, method).toBe(404);
      const own = await call(other.accessToken, method, { sessionId: otherSessionId });
      expect(own.status, method).toBe(200);
      const bad = await call(tenant.accessToken, method, { sessionId, pageToken: 'bm90LWEtdG9rZW4' });
      expect(bad.status, method).toBe(400);
      expect(bad.json.code).toBe('invalid_argument');
    }
    const tooBig = await call(tenant.accessToken, 'ListMessages', { sessionId, pageSize: 501 });
    expect(tooBig.status).toBe(400);
  });

  it('lists chats by last activity with the last message and the unread count, paged', async () => {
    const session = await createSession(tenant, 'chats');
    const chats = ['+15552000', '+15552001', '+15552002'];
    const last: Record<string, string> = {};
    for (const [i, chat] of chats.entries()) {
      const at = new Date(base.getTime() + (i === 1 ? 10_000 : i * 1000));
      last[chat] = await insertMessage({
        tenantId: tenant.tenantId,
        sessionId: session,
        chat,
        direction: 'INBOUND',
        status: 'RECEIVED',
        at,
      });
      await sql(
        `insert into "chat" ("session_id", "chat", "tenant_id", "last_message_id", "last_activity_at", "unread_count", "created_at")
         values (?, ?, ?, ?, ?, ?, ?)`,
        [session, chat, tenant.tenantId, last[chat], at, i + 1, at],
      );
    }
    const first = await call(tenant.accessToken, 'ListChats', { sessionId: session, pageSize: 2 });
    expect(first.status).toBe(200);
    const page1 = first.json.chats as { chat: string; unreadCount: number; lastMessage: ApiMessage }[];
    expect(page1.map((c) => c.chat)).toEqual(['+15552001', '+15552002']);
    expect(page1[0]).toMatchObject({ unreadCount: 2, lastMessage: { id: last['+15552001'] } });
    const second = await call(tenant.accessToken, 'ListChats', {
      sessionId: session,
      pageSize: 2,
      pageToken: first.json.nextPageToken,
    });
    const page2 = second.json.chats as { chat: string; unreadCount: number }[];
    expect(page2.map((c) => c.chat)).toEqual(['+15552000']);
    expect(page2[0]?.unreadCount).toBe(1);
    expect(second.json.nextPageToken ?? '').toBe('');
  });

  it('purges messages, chats and events past their retention in batches, by plan, on the clock it is given', async () => {
    const clock = new ManualClock(new Date('2027-03-01T00:00:00Z'));
    const days = (n: number) => new Date(clock.now().getTime() - n * 24 * 3600 * 1000);
    const purgeSession = await createSession(tenant, 'purge');
    const pro = await signUp(cp.httpUrl, 'pro');
    await sql(`update "tenant" set "plan" = 'pro' where "id" = ?`, [pro.tenantId]);
    const proSession = await createSession(pro, 'kept');
    const old: string[] = [];
    for (let i = 0; i < 5; i++) {
      old.push(await insertMessage({ tenantId: tenant.tenantId, sessionId: purgeSession, chat: 'old', at: days(31) }));
    }
    const fresh = await insertMessage({
      tenantId: tenant.tenantId,
      sessionId: purgeSession,
      chat: 'new',
      at: days(29),
    });
    const proOld = await insertMessage({ tenantId: pro.tenantId, sessionId: proSession, chat: 'old', at: days(31) });
    for (const [chat, at] of [
      ['old', days(31)],
      ['new', days(29)],
    ] as const) {
      await sql(
        `insert into "chat" ("session_id", "chat", "tenant_id", "last_activity_at", "created_at") values (?, ?, ?, ?, ?)`,
        [purgeSession, chat, tenant.tenantId, at, at],
      );
    }
    const eventTenant = randomUUID();
    await sql(
      `insert into "event" ("tenant_id", "seq", "type", "session_id", "occurred_at", "data", "created_at")
       select ?, s, 'session.status', null, ?, '{}'::jsonb, case when s <= 3 then ?::timestamptz else ?::timestamptz end
         from generate_series(1, 4) s`,
      [eventTenant, days(8), days(8), days(6)],
    );

    const resources = {
      orm: cp.app.database.orm,
      store: cp.app.store,
      clock,
      scheduler: cp.app.scheduler,
      random: Math.random,
      logger: cp.app.logger,
      localDir: '',
    };
    const options = {
      messageRetentionDays: { free: 30, pro: 180, enterprise: 365 },
      eventRetentionDays: 7,
      purgeIntervalMs: 60_000,
      purgeBatch: 2,
    };
    const leader = new RetentionPurge(resources, { ...options, replicaId: 'replica-a' });
    const follower = new RetentionPurge(resources, { ...options, replicaId: 'replica-b' });
    const counts = await leader.tick();
    // Only one replica purges: the other finds the role taken.
    expect(await follower.tick()).toBeUndefined();
    // Other tests' rows are past retention on this clock too: count at least ours.
    expect(counts?.events).toBeGreaterThanOrEqual(3);
    expect(counts?.messages).toBeGreaterThanOrEqual(5);
    expect(counts?.chats).toBeGreaterThanOrEqual(1);

    const remaining = (await sql(`select "id" from "message" where "id" = any(?::uuid[])`, [
      `{${[...old, fresh, proOld].join(',')}}`,
    ])) as { id: string }[];
    expect(remaining.map((r) => r.id).sort()).toEqual([fresh, proOld].sort());
    const chatsLeft = (await sql(`select "chat" from "chat" where "session_id" = ?`, [purgeSession])) as {
      chat: string;
    }[];
    expect(chatsLeft.map((c) => c.chat)).toEqual(['new']);
    const eventsLeft = (await sql(`select "seq" from "event" where "tenant_id" = ?`, [eventTenant])) as {
      seq: string;
    }[];
    expect(eventsLeft.map((e) => Number(e.seq))).toEqual([4]);
    await leader.stop();
    await follower.stop();
  });
});
