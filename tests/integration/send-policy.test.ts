import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../lib/logger.js';
import { Tenant } from '../../src/identity/account.entity.js';
import type { TenantPlan } from '../../src/identity/identity.types.js';
import type { DispatchCandidate } from '../../src/messaging/dispatch-gate.js';
import { createSendGovernor, type SendGovernor } from '../../src/messaging/send-governor.gate.js';
import { DEFAULT_SEND_POLICY_PLANS } from '../../src/messaging/send-policy.js';
import { postJson, startControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { addMember, signUp, type TestTenant } from '../support/tenants.js';

const rpc = (path: string) => `switchboard.v1.${path}`;

/** The free plan's defaults and limits as the API spells them (Connect JSON, camelCase). */
const FREE_DEFAULTS = {
  perMinute: 20,
  perDay: 1000,
  newRecipientIntervalSeconds: 6,
  newRecipientBurst: 3,
  warmupDays: 7,
  jitterMs: 2000,
};

describe('send policy: GetSendPolicy and SetSendPolicy (PostgreSQL + Redis)', () => {
  let cp: TestControlPlane;
  let acme: TestTenant;
  let other: TestTenant;
  let sessionId: string;

  const call = (path: string, body: unknown, token: string) => postJson(cp.httpUrl, rpc(path), body, token);

  async function createSession(tenant: TestTenant, name: string): Promise<string> {
    const { status, json } = await call(
      'SessionService/CreateSession',
      { name, engine: 'ENGINE_SANDBOX' },
      tenant.accessToken,
    );
    if (status !== 200) throw new Error(`create session failed: ${JSON.stringify(json)}`);
    return (json.session as { id: string }).id;
  }

  async function setPlan(tenant: TestTenant, plan: TenantPlan): Promise<void> {
    await cp.app.database.orm.em.fork().nativeUpdate(Tenant, { id: tenant.tenantId }, { plan });
  }

  beforeAll(async () => {
    // No auth cache: a plan changed in the database applies to the next call.
    cp = await startControlPlane({ env: { AUTH_CACHE_TTL_MS: '0' } });
    acme = await signUp(cp.httpUrl, 'acme');
    other = await signUp(cp.httpUrl, 'other');
    sessionId = await createSession(acme, 'main');
  });
  afterAll(async () => {
    await cp?.close();
  });

  it('shows the plan defaults and limits of a session nobody tuned', async () => {
    const { status, json } = await call('MessageService/GetSendPolicy', { sessionId }, acme.accessToken);
    expect(status).toBe(200);
    expect(json.policy).toEqual(FREE_DEFAULTS);
    expect(json.planLimits).toEqual({ ...FREE_DEFAULTS, jitterMs: 1000 });
  });

  it('stores a policy within the plan, keeps plan defaults for fields at 0, and audits the change', async () => {
    const set = await call(
      'MessageService/SetSendPolicy',
      { sessionId, policy: { perMinute: 10, perDay: 500, newRecipientIntervalSeconds: 10 } },
      acme.accessToken,
    );
    expect(set.status).toBe(200);
    const expected = { ...FREE_DEFAULTS, perMinute: 10, perDay: 500, newRecipientIntervalSeconds: 10 };
    expect(set.json.policy).toEqual(expected);
    const got = await call('MessageService/GetSendPolicy', { sessionId }, acme.accessToken);
    expect(got.json.policy).toEqual(expected);

    const audit = await call('AuditService/ListAuditEvents', { actionPrefix: 'session.send_policy' }, acme.accessToken);
    const events = audit.json.events as { action: string; targetId: string; details: Record<string, string> }[];
    expect(events[0]).toMatchObject({
      action: 'session.send_policy_changed',
      targetId: sessionId,
      details: { per_minute: '20 -> 10', per_day: '1000 -> 500', new_recipient_interval_seconds: '6 -> 10' },
    });
  });

  it('refuses a field beyond the plan limit with INVALID_ARGUMENT naming the field and the limit, storing nothing', async () => {
    const before = await call('MessageService/GetSendPolicy', { sessionId }, acme.accessToken);
    const tooMany = await call(
      'MessageService/SetSendPolicy',
      { sessionId, policy: { perMinute: 5, perDay: 5000 } },
      acme.accessToken,
    );
    expect(tooMany.status).toBe(400);
    expect(tooMany.json.code).toBe('invalid_argument');
    expect(tooMany.json.message).toMatch(/policy\.per_day: the free plan allows at most 1000 \(got 5000\)/);
    const tooFast = await call(
      'MessageService/SetSendPolicy',
      { sessionId, policy: { newRecipientIntervalSeconds: 2 } },
      acme.accessToken,
    );
    expect(tooFast.json.code).toBe('invalid_argument');
    expect(tooFast.json.message).toMatch(/policy\.new_recipient_interval_seconds: the free plan allows at least 6/);
    const after = await call('MessageService/GetSendPolicy', { sessionId }, acme.accessToken);
    expect(after.json.policy).toEqual(before.json.policy);
  });

  it('refuses what the API itself bounds before any plan is looked at', async () => {
    const huge = await call(
      'MessageService/SetSendPolicy',
      { sessionId, policy: { perMinute: 7000 } },
      acme.accessToken,
    );
    expect(huge.json.code).toBe('invalid_argument');
    const missing = await call('MessageService/SetSendPolicy', { sessionId }, acme.accessToken);
    expect(missing.json.code).toBe('invalid_argument');
    const badId = await call('MessageService/GetSendPolicy', { sessionId: 'not-a-uuid' }, acme.accessToken);
    expect(badId.json.code).toBe('invalid_argument');
  });

  it('lets a higher plan loosen the policy up to its own limits', async () => {
    await setPlan(acme, 'pro');
    try {
      const got = await call('MessageService/GetSendPolicy', { sessionId }, acme.accessToken);
      expect(got.json.planLimits).toMatchObject({ perMinute: 60, perDay: 20000, newRecipientIntervalSeconds: 3 });
      const set = await call(
        'MessageService/SetSendPolicy',
        { sessionId, policy: { perMinute: 60, perDay: 20000, newRecipientIntervalSeconds: 3, jitterMs: 1 } },
        acme.accessToken,
      );
      expect(set.status).toBe(200);
      expect(set.json.policy).toMatchObject({
        perMinute: 60,
        perDay: 20000,
        newRecipientIntervalSeconds: 3,
        jitterMs: 1,
      });
      const over = await call(
        'MessageService/SetSendPolicy',
        { sessionId, policy: { perDay: 20001 } },
        acme.accessToken,
      );
      expect(over.json.message).toMatch(/policy\.per_day: the pro plan allows at most 20000/);
    } finally {
      await setPlan(acme, 'free');
    }
    // Back on free, what was stored is clamped to the free plan's limits.
    const clamped = await call('MessageService/GetSendPolicy', { sessionId }, acme.accessToken);
    expect(clamped.json.policy).toEqual({ ...FREE_DEFAULTS, jitterMs: 1000 });
  });

  it("refuses another tenant's session as not found, and stores nothing", async () => {
    const get = await call('MessageService/GetSendPolicy', { sessionId }, other.accessToken);
    expect(get.json.code).toBe('not_found');
    const set = await call('MessageService/SetSendPolicy', { sessionId, policy: { perMinute: 1 } }, other.accessToken);
    expect(set.json.code).toBe('not_found');
    const mine = await call('MessageService/GetSendPolicy', { sessionId }, acme.accessToken);
    expect((mine.json.policy as { perMinute: number }).perMinute).not.toBe(1);
  });

  it('lets a VIEWER read but not change the policy, and a DEVELOPER change it (the permission table)', async () => {
    const viewer = await addMember(cp.httpUrl, acme, 'VIEWER');
    const developer = await addMember(cp.httpUrl, acme, 'DEVELOPER');
    const read = await call('MessageService/GetSendPolicy', { sessionId }, viewer.token);
    expect(read.status).toBe(200);
    const refused = await call('MessageService/SetSendPolicy', { sessionId, policy: { perMinute: 2 } }, viewer.token);
    expect(refused.json.code).toBe('permission_denied');
    const changed = await call(
      'MessageService/SetSendPolicy',
      { sessionId, policy: { perMinute: 3 } },
      developer.token,
    );
    expect(changed.status).toBe(200);
    const now = await call('MessageService/GetSendPolicy', { sessionId }, viewer.token);
    expect((now.json.policy as { perMinute: number }).perMinute).toBe(3);
  });
});

describe('send governor as the dispatch gate, seeded from the database (PostgreSQL + Redis)', () => {
  let cp: TestControlPlane;
  let acme: TestTenant;
  let governor: SendGovernor;
  const T0 = new Date('2026-03-02T10:00:00Z');

  beforeAll(async () => {
    // One free tenant with a session per case.
    cp = await startControlPlane({ env: { SESSION_QUOTA_FREE: '20' } });
    acme = await signUp(cp.httpUrl, 'acme');
    governor = createSendGovernor({
      orm: cp.app.database.orm,
      store: cp.app.store,
      plans: DEFAULT_SEND_POLICY_PLANS,
      random: () => 0,
      logger: createLogger({ level: 'silent', pretty: false, name: 'test' }),
    });
  });
  afterAll(async () => {
    await governor?.close();
    await cp?.close();
  });

  async function sessionWith(options: {
    policy: Record<string, number>;
    outbound?: { chat: string; at: Date }[];
    inbound?: string[];
  }): Promise<string> {
    const { json } = await postJson(
      cp.httpUrl,
      rpc('SessionService/CreateSession'),
      { name: `s-${randomUUID().slice(0, 8)}`, engine: 'ENGINE_SANDBOX' },
      acme.accessToken,
    );
    const id = (json.session as { id: string }).id;
    const set = await postJson(
      cp.httpUrl,
      rpc('MessageService/SetSendPolicy'),
      { sessionId: id, policy: options.policy },
      acme.accessToken,
    );
    expect(set.status).toBe(200);
    const connection = cp.app.database.orm.em.getConnection();
    const insert = `insert into "message" ("id", "tenant_id", "session_id", "direction", "chat", "text", "status", "dispatched_at", "created_at", "updated_at")
      values (?, ?, ?, ?, ?, 'x', ?, ?, ?, ?)`;
    for (const sent of options.outbound ?? []) {
      await connection.execute(insert, [
        randomUUID(),
        acme.tenantId,
        id,
        'OUTBOUND',
        sent.chat,
        'SENT',
        sent.at,
        sent.at,
        sent.at,
      ]);
    }
    for (const from of options.inbound ?? []) {
      await connection.execute(insert, [randomUUID(), acme.tenantId, id, 'INBOUND', from, 'RECEIVED', null, T0, T0]);
    }
    return id;
  }

  const candidate = (sessionId: string, chat: string): DispatchCandidate => ({
    messageId: randomUUID(),
    sessionId,
    tenantId: acme.tenantId,
    chat,
    createdAt: T0,
  });

  it('counts what the session already sent today against the daily cap', async () => {
    const outbound = Array.from({ length: 5 }, (_, i) => ({
      chat: `+1555000${String(i).padStart(4, '0')}`,
      at: new Date(T0.getTime() - 3_600_000 - i),
    }));
    // Yesterday's sends do not count.
    outbound.push({ chat: '+15559999999', at: new Date(T0.getTime() - 24 * 3_600_000) });
    const id = await sessionWith({ policy: { perDay: 5 }, outbound, inbound: ['+15551110000'] });
    const [decision] = await governor.gate.decide(id, [candidate(id, '+15551110000')], T0);
    expect(decision).toMatchObject({
      release: false,
      reason: 'daily cap of 5 reached',
      heldUntil: new Date('2026-03-03T00:00:00Z'),
    });
  });

  it('limits a new contact the session just wrote to, but not a contact that wrote to the number', async () => {
    const recent = [0, 1, 2].map((i) => ({
      chat: '15552220000@s.whatsapp.net',
      at: new Date(T0.getTime() - 1000 + i),
    }));
    const id = await sessionWith({
      policy: {},
      outbound: recent,
      inbound: ['15553330000@s.whatsapp.net'],
    });
    const decisions = await governor.gate.decide(
      id,
      [candidate(id, '+15552220000'), candidate(id, '+15553330000')],
      new Date(T0.getTime() + 2000),
    );
    expect(decisions[0]).toMatchObject({
      release: false,
      reason: 'per-recipient rate: 1 message per 6 s to a new contact (burst 3)',
      heldUntil: new Date(T0.getTime() - 1000 + 6000),
    });
    expect(decisions[1]).toMatchObject({ release: true });
  });

  it('holds a burst of 10 to one new contact and releases it on schedule, across a restart of the governor', async () => {
    const id = await sessionWith({ policy: {} });
    const queue = Array.from({ length: 10 }, () => candidate(id, '+15556660000'));
    const sentAt = new Map<string, number>();
    let gate = governor.gate;
    let restarted: SendGovernor | undefined;
    let now = T0.getTime();
    for (let round = 0; round < 20 && sentAt.size < queue.length; round++) {
      if (sentAt.size >= 5 && gate === governor.gate) {
        // A new control plane takes over: its governor knows only what the message table says.
        restarted = createSendGovernor({
          orm: cp.app.database.orm,
          store: cp.app.store,
          plans: DEFAULT_SEND_POLICY_PLANS,
          random: () => 0,
          logger: createLogger({ level: 'silent', pretty: false, name: 'test' }),
        });
        gate = restarted.gate;
      }
      const waiting = queue.filter((c) => !sentAt.has(c.messageId));
      const decisions = await gate.decide(id, waiting, new Date(now));
      expect(decisions.map((d) => d.messageId)).toEqual(waiting.map((c) => c.messageId));
      for (const decision of decisions) {
        if (!decision.release) continue;
        sentAt.set(decision.messageId, now - T0.getTime());
        // What the dispatcher stamps on a released message.
        await cp.app.database.orm.em
          .getConnection()
          .execute(
            `insert into "message" ("id", "tenant_id", "session_id", "direction", "chat", "text", "status", "dispatched_at", "created_at", "updated_at") values (?, ?, ?, 'OUTBOUND', '+15556660000', 'x', 'QUEUED', ?, ?, ?)`,
            [decision.messageId, acme.tenantId, id, new Date(now), T0, T0],
          );
      }
      const next = Math.min(...decisions.flatMap((d) => (d.release ? [] : [d.heldUntil.getTime()])));
      if (Number.isFinite(next)) now = next;
    }
    expect(queue.map((c) => sentAt.get(c.messageId))).toEqual(
      [0, 0, 0, 6, 12, 18, 24, 30, 36, 42].map((s) => s * 1000),
    );
  });

  it('applies a policy changed through SetSendPolicy to the next decision', async () => {
    const id = await sessionWith({ policy: { perDay: 1 } });
    const [first, second] = await governor.gate.decide(
      id,
      [candidate(id, '+15554440000'), candidate(id, '+15554440001')],
      T0,
    );
    expect(first?.release).toBe(true);
    expect(second).toMatchObject({ release: false, reason: 'daily cap of 1 reached' });
    // The dispatcher stamps what it sent; a governor reading the session again counts it.
    await cp.app.database.orm.em
      .getConnection()
      .execute(
        `insert into "message" ("id", "tenant_id", "session_id", "direction", "chat", "text", "status", "dispatched_at", "created_at", "updated_at") values (?, ?, ?, 'OUTBOUND', '+15554440000', 'x', 'SENT', ?, ?, ?)`,
        [first?.messageId, acme.tenantId, id, T0, T0, T0],
      );
    const set = await postJson(
      cp.httpUrl,
      rpc('MessageService/SetSendPolicy'),
      { sessionId: id, policy: { perDay: 2 } },
      acme.accessToken,
    );
    expect(set.status).toBe(200);
    // The announcement crosses the coordination store; the next decision after it sees the new cap.
    const released = await (async () => {
      for (let i = 0; i < 100; i++) {
        const [decision] = await governor.gate.decide(
          id,
          [candidate(id, '+15554440001')],
          new Date(T0.getTime() + 30_000),
        );
        if (decision?.release) return true;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      return false;
    })();
    expect(released).toBe(true);
  });
});
