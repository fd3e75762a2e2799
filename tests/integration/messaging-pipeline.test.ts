import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../agent/agent.js';
import { readSendLog } from '../../agent/engines/sandbox-send-log.js';
import { createTestAgent } from '../support/agents.js';
import { eventually, postJson, startControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { signUp, type TestTenant } from '../support/tenants.js';

interface JsonMessage {
  id: string;
  status: string;
  whatsappMessageId?: string;
  idempotencyKey?: string;
  sentAt?: string;
  deliveredAt?: string;
  readAt?: string;
}

/**
 * The send pipeline end to end on real PostgreSQL, Redis and an agent on
 * the sandbox engine: SendText answers QUEUED at once, the dispatcher hands
 * the message to the worker, and the worker's batched reports move it on.
 */
describe('send pipeline (PostgreSQL + Redis + sandbox agent)', () => {
  let cp: TestControlPlane;
  let tenant: TestTenant;
  let other: TestTenant;
  let agent: Agent;
  let sessionId: string;
  const sendLog = join(mkdtempSync(join(tmpdir(), 'sb-sendlog-')), 'sends.jsonl');
  const call = (token: string, path: string, body: unknown) =>
    postJson(cp.httpUrl, `switchboard.v1.${path}`, body, token);
  const getMessage = async (id: string) =>
    (await call(tenant.accessToken, 'MessageService/GetMessage', { messageId: id })).json.message as JsonMessage;

  beforeAll(async () => {
    cp = await startControlPlane({
      env: {
        // The pipeline alone; the governor's pacing has its own tests.
        SEND_GOVERNOR: 'off',
        HEARTBEAT_INTERVAL_MS: '250',
        LEASE_TTL_MS: '1500',
        SWEEP_INTERVAL_MS: '100',
        MESSAGE_QUEUE_PER_SESSION: '50',
      },
    });
    tenant = await signUp(cp.httpUrl, 'pipeline');
    other = await signUp(cp.httpUrl, 'pipeline-intruder');
    agent = createTestAgent(cp.grpcAddress, await cp.joinToken(10), { capacity: 10, sandboxSendLog: sendLog });
    agent.start();
    await agent.connected();
    const created = await call(tenant.accessToken, 'SessionService/CreateSession', {
      name: 'pipeline',
      engine: 'ENGINE_SANDBOX',
    });
    sessionId = (created.json.session as { id: string }).id;
    await eventually(async () => {
      const { json } = await call(tenant.accessToken, 'SessionService/GetSession', { sessionId });
      return (json.session as { status: string }).status === 'SESSION_STATUS_SCAN_QR' ? true : undefined;
    });
    await call(tenant.accessToken, 'SandboxService/ScanQr', { sessionId, phoneNumber: '+15550003333', pushName: 'P' });
    await eventually(async () => {
      const { json } = await call(tenant.accessToken, 'SessionService/GetSession', { sessionId });
      return (json.session as { status: string }).status === 'SESSION_STATUS_WORKING' ? true : undefined;
    });
  });
  afterAll(async () => {
    await agent?.stop();
    await cp?.close();
  });

  it('answers QUEUED at once, then the message goes SENT, DELIVERED and READ, each an event', async () => {
    const sent = await call(tenant.accessToken, 'MessageService/SendText', {
      sessionId,
      to: '+15550004444',
      text: 'through the pipeline',
    });
    expect(sent.status).toBe(200);
    const queued = sent.json.message as JsonMessage;
    expect(queued.status).toBe('MESSAGE_STATUS_QUEUED');
    expect(queued.whatsappMessageId).toBeUndefined();
    // No key given: one was generated and returned.
    expect(queued.idempotencyKey).toMatch(/^[0-9a-f-]{36}$/);

    const read = await eventually(async () => {
      const m = await getMessage(queued.id);
      return m.status === 'MESSAGE_STATUS_READ' ? m : undefined;
    });
    expect(read.whatsappMessageId).toMatch(/^3EB0[0-9A-F]{16}$/);
    expect(read.sentAt && read.deliveredAt && read.readAt).toBeTruthy();

    // The log has the message queued, then each status, with the message as it was then.
    const events = await cp.app.database.orm.em
      .fork()
      .getConnection()
      .execute<{ type: string; data: JsonMessage }[]>(
        `select "type", "data" from "event" where "data"->>'id' = ? order by "seq"`,
        [queued.id],
      );
    expect(events.map((e) => [e.type, e.data.status])).toEqual([
      ['message.queued', 'MESSAGE_STATUS_QUEUED'],
      ['message.status', 'MESSAGE_STATUS_SENT'],
      ['message.status', 'MESSAGE_STATUS_DELIVERED'],
      ['message.status', 'MESSAGE_STATUS_READ'],
    ]);
    // The chat shows it as its last message.
    const [chat] = await cp.app.database.orm.em
      .fork()
      .getConnection()
      .execute<{ last_message_id: string; unread_count: number }[]>(
        `select "last_message_id", "unread_count" from "chat" where "session_id" = ? and "chat" = ?`,
        [sessionId, '15550004444@s.whatsapp.net'],
      );
    expect(chat?.last_message_id).toBe(queued.id);
  });

  it('returns the first message for a repeated idempotency key, and sends it once', async () => {
    const body = { sessionId, to: '+15550005555', text: 'once only', idempotencyKey: 'order-7' };
    const [first, second] = await Promise.all([
      call(tenant.accessToken, 'MessageService/SendText', body),
      call(tenant.accessToken, 'MessageService/SendText', body),
    ]);
    const id = (first.json.message as JsonMessage).id;
    expect((second.json.message as JsonMessage).id).toBe(id);
    await eventually(async () => ((await getMessage(id)).status === 'MESSAGE_STATUS_READ' ? true : undefined));
    const again = await call(tenant.accessToken, 'MessageService/SendText', body);
    expect((again.json.message as JsonMessage).id).toBe(id);
    expect((again.json.message as JsonMessage).status).toBe('MESSAGE_STATUS_READ');
    expect(readSendLog(sendLog).filter((r) => r.messageId === id)).toHaveLength(1);

    // Another text under the used key is a mistake, not a retry.
    const different = await call(tenant.accessToken, 'MessageService/SendText', { ...body, text: 'something else' });
    expect(different.json.code).toBe('invalid_argument');
  });

  it('stores an inbound message once with a message.received event; the chat counts it unread until the session sends', async () => {
    // The chat is the sender as WhatsApp names it; the reply below is addressed by phone number
    // and is the same chat (one spelling for a person, whichever way a message goes).
    const phone = '+15550007777';
    const from = '15550007777@s.whatsapp.net';
    const chat = async () => {
      const [row] = await cp.app.database.orm.em
        .fork()
        .getConnection()
        .execute<{ unread_count: number; last_message_id: string }[]>(
          `select "unread_count", "last_message_id" from "chat" where "session_id" = ? and "chat" = ?`,
          [sessionId, from],
        );
      return row;
    };
    for (const text of ['hello?', 'anyone?']) {
      const injected = await call(tenant.accessToken, 'SandboxService/InjectInbound', { sessionId, from: phone, text });
      expect(injected.status).toBe(200);
    }
    const unread = await eventually(async () => ((await chat())?.unread_count === 2 ? await chat() : undefined));
    const received = await cp.app.database.orm.em
      .fork()
      .getConnection()
      .execute<{ data: { id: string; text: string; status: string } }[]>(
        `select "data" from "event" where "type" = 'message.received' and "session_id" = ? order by "seq"`,
        [sessionId],
      );
    expect(received.map((e) => [e.data.text, e.data.status])).toEqual([
      ['hello?', 'MESSAGE_STATUS_RECEIVED'],
      ['anyone?', 'MESSAGE_STATUS_RECEIVED'],
    ]);
    expect(unread?.last_message_id).toBe(received[1]?.data.id);

    const reply = await call(tenant.accessToken, 'MessageService/SendText', { sessionId, to: phone, text: 'here!' });
    const replyId = (reply.json.message as JsonMessage).id;
    const answered = await eventually(async () => {
      const row = await chat();
      return row?.last_message_id === replyId ? row : undefined;
    });
    expect(answered.unread_count).toBe(0);
  });

  it('shows a send and a reply through the API: ListMessages newest first, ListChats, ListEvents, refused to another tenant', async () => {
    const peer = '+15550006666';
    const { json: sent } = await call(tenant.accessToken, 'MessageService/SendText', {
      sessionId,
      to: peer,
      text: 'history out',
    });
    const outbound = sent.message as JsonMessage;
    await eventually(async () => ((await getMessage(outbound.id)).status === 'MESSAGE_STATUS_READ' ? true : undefined));
    const { json: injected } = await call(tenant.accessToken, 'SandboxService/InjectInbound', {
      sessionId,
      from: peer,
      text: 'history in',
    });
    const inboundWa = injected.whatsappMessageId as string;

    const listed = await eventually(async () => {
      const { json } = await call(tenant.accessToken, 'MessageService/ListMessages', { sessionId, pageSize: 2 });
      const messages = (json.messages ?? []) as (JsonMessage & { text: string; direction: string })[];
      return messages[0]?.whatsappMessageId === inboundWa ? messages : undefined;
    });
    expect(listed.map((m) => [m.direction, m.text, m.status])).toEqual([
      ['MESSAGE_DIRECTION_INBOUND', 'history in', 'MESSAGE_STATUS_RECEIVED'],
      ['MESSAGE_DIRECTION_OUTBOUND', 'history out', 'MESSAGE_STATUS_READ'],
    ]);

    const { json: chats } = await call(tenant.accessToken, 'MessageService/ListChats', { sessionId });
    const listedChats = (chats.chats ?? []) as { chat: string; unreadCount?: number; lastMessage?: { text: string } }[];
    // One chat for the person, whether we wrote to "+1555…" or they wrote from "1555…@s.whatsapp.net".
    expect(listedChats.filter((c) => c.chat === '15550006666@s.whatsapp.net')).toEqual([
      expect.objectContaining({ unreadCount: 1, lastMessage: expect.objectContaining({ text: 'history in' }) }),
    ]);
    expect(listedChats.some((c) => c.chat.startsWith('+'))).toBe(false);
    // The history filters by chat in either spelling.
    const { json: byPhone } = await call(tenant.accessToken, 'MessageService/ListMessages', { sessionId, chat: peer });
    expect(((byPhone.messages ?? []) as { text: string }[]).map((m) => m.text)).toEqual(['history in', 'history out']);

    const { json: log } = await call(tenant.accessToken, 'EventService/ListEvents', {
      types: ['message.'],
      sessionId,
      pageSize: 1000,
    });
    const events = (log.events ?? []) as { type: string; message?: JsonMessage & { text: string } }[];
    const about = (text: string) => events.filter((e) => e.message?.text === text).map((e) => e.type);
    expect(about('history out')).toEqual(['message.queued', 'message.status', 'message.status', 'message.status']);
    expect(about('history in')).toEqual(['message.received']);

    // None of it is another tenant's to read.
    for (const [path, body] of [
      ['MessageService/ListMessages', { sessionId }],
      ['MessageService/ListChats', { sessionId }],
      ['MessageService/GetMessage', { messageId: outbound.id }],
    ] as const) {
      const refused = await call(other.accessToken, path, body);
      expect(refused.status, path).toBe(404);
    }
    const { json: theirs } = await call(other.accessToken, 'EventService/ListEvents', { pageSize: 1000 });
    expect(theirs.events ?? []).toEqual([]);
  });

  it("refuses another tenant's session and message ids", async () => {
    const sent = await call(tenant.accessToken, 'MessageService/SendText', {
      sessionId,
      to: '+15550006666',
      text: 'x',
    });
    const id = (sent.json.message as JsonMessage).id;
    const send = await call(other.accessToken, 'MessageService/SendText', { sessionId, to: '+15550006666', text: 'y' });
    expect(send.json.code).toBe('not_found');
    const read = await call(other.accessToken, 'MessageService/GetMessage', { messageId: id });
    expect(read.json.code).toBe('not_found');
  });

  it('refuses bad input with INVALID_ARGUMENT and writes nothing', async () => {
    const before = await countMessages();
    const bad = await call(tenant.accessToken, 'MessageService/SendText', { sessionId, to: '', text: 'x' });
    expect(bad.json.code).toBe('invalid_argument');
    expect(await countMessages()).toBe(before);
  });

  async function countMessages(): Promise<number> {
    const [row] = await cp.app.database.orm.em
      .fork()
      .getConnection()
      .execute<{ n: number }[]>(`select count(*)::int as "n" from "message" where "session_id" = ?`, [sessionId]);
    return row?.n ?? 0;
  }
});
