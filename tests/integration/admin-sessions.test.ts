import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postJson, startControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { signUp, type TestTenant } from '../support/tenants.js';

/**
 * Platform admins see every tenant's sessions (read-only, audited); tenants
 * still see only their own and cannot pick another tenant.
 */
describe("platform admins read tenants' sessions (real PostgreSQL and Redis)", () => {
  let cp: TestControlPlane;
  let acme: TestTenant;
  let globex: TestTenant;
  const sessionIds: Record<string, string> = {};
  const call = (token: string, path: string, body: unknown) =>
    postJson(cp.httpUrl, `switchboard.v1.${path}`, body, token);
  const names = (json: Record<string, unknown>) =>
    ((json.sessions ?? []) as { name: string }[]).map((s) => s.name).sort();

  beforeAll(async () => {
    cp = await startControlPlane();
    acme = await signUp(cp.httpUrl, 'acme');
    globex = await signUp(cp.httpUrl, 'globex');
    for (const [tenant, name] of [
      [acme, 'acme-desk'],
      [globex, 'globex-desk'],
    ] as const) {
      const created = await call(tenant.accessToken, 'SessionService/CreateSession', {
        name,
        engine: 'ENGINE_SANDBOX',
      });
      sessionIds[name] = (created.json.session as { id: string }).id;
    }
  });
  afterAll(async () => {
    await cp?.close();
  });

  it('lists every tenant, or one, and reads any session, each read audited', async () => {
    const all = await call(cp.adminToken, 'SessionService/ListSessions', {});
    expect(all.status).toBe(200);
    expect(names(all.json)).toEqual(['acme-desk', 'globex-desk']);
    const one = await call(cp.adminToken, 'SessionService/ListSessions', { tenantId: globex.tenantId });
    expect(names(one.json)).toEqual(['globex-desk']);
    const read = await call(cp.adminToken, 'SessionService/GetSession', { sessionId: sessionIds['acme-desk'] });
    expect(read.status).toBe(200);
    expect((read.json.session as { name: string }).name).toBe('acme-desk');

    const audit = await call(cp.adminToken, 'AuditService/ListAuditEvents', { actionPrefix: 'session' });
    const actions = ((audit.json.events ?? []) as { action: string; targetId: string }[]).map(
      (e) => `${e.action} ${e.targetId}`,
    );
    expect(actions).toContain(`session.viewed ${sessionIds['acme-desk']}`);
    expect(actions).toContain(`sessions.listed ${globex.tenantId}`);
    expect(actions).toContain('sessions.listed *');
  });

  it('does not let a platform admin change a session, nor a tenant pick another tenant', async () => {
    const stop = await call(cp.adminToken, 'SessionService/StopSession', { sessionId: sessionIds['acme-desk'] });
    expect(stop.status).toBe(403);
    const qr = await call(cp.adminToken, 'SessionService/GetQrCode', { sessionId: sessionIds['acme-desk'] });
    expect(qr.status).toBe(403);

    const own = await call(acme.accessToken, 'SessionService/ListSessions', {});
    expect(names(own.json)).toEqual(['acme-desk']);
    const peek = await call(acme.accessToken, 'SessionService/ListSessions', { tenantId: globex.tenantId });
    expect(peek.status).toBe(403);
    const other = await call(acme.accessToken, 'SessionService/GetSession', { sessionId: sessionIds['globex-desk'] });
    expect(other.status).toBe(404);
  });
});
