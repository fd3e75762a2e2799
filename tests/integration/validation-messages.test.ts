import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postJson, startControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { signUp, type TestTenant } from '../support/tenants.js';

/**
 * Refusals name what the caller may send: enum rules list the values by
 * name, not by number; a field with an obvious default may be left out.
 */
describe('validation messages and defaults (real PostgreSQL and Redis)', () => {
  let cp: TestControlPlane;
  let tenant: TestTenant;
  const call = (path: string, body: unknown) =>
    postJson(cp.httpUrl, `switchboard.v1.${path}`, body, tenant.accessToken);

  beforeAll(async () => {
    cp = await startControlPlane({ env: { SESSION_QUOTA_FREE: '10' } });
    tenant = await signUp(cp.httpUrl, 'messages');
  });
  afterAll(async () => {
    await cp?.close();
  });

  it('names the allowed enum values instead of their numbers', async () => {
    const engine = await call('SessionService/CreateSession', { name: 'x', engine: 7 });
    expect(engine.status).toBe(400);
    expect(engine.json.message).toBe('engine: must be one of ENGINE_SANDBOX, ENGINE_BAILEYS');

    const role = await call('ApiKeyService/CreateApiKey', { name: 'k', role: 'ROLE_OWNER' });
    expect(role.status).toBe(400);
    expect(role.json.message).toBe('role: must be one of ROLE_ADMIN, ROLE_DEVELOPER, ROLE_VIEWER');
  });

  it('creates a session on the configured default engine when none is named (Baileys outside the developer setup)', async () => {
    const created = await call('SessionService/CreateSession', { name: 'no-engine' });
    expect(created.status).toBe(200);
    expect((created.json.session as { engine: string }).engine).toBe('ENGINE_BAILEYS');
  });

  it('serves read-only RPCs over Connect GET (a browser or cache can fetch them), and nothing else', async () => {
    const created = await call('SessionService/CreateSession', { name: 'over-get', engine: 'ENGINE_SANDBOX' });
    const sessionId = (created.json.session as { id: string }).id;
    const get = (path: string, message: unknown) =>
      fetch(
        `${cp.httpUrl}/switchboard.v1.${path}?connect=v1&encoding=json&message=${encodeURIComponent(JSON.stringify(message))}`,
        { headers: { authorization: `Bearer ${tenant.accessToken}` } },
      );
    const session = await get('SessionService/GetSession', { sessionId });
    expect(session.status).toBe(200);
    expect(((await session.json()) as { session: { id: string } }).session.id).toBe(sessionId);
    expect((await get('SessionService/ListSessions', {})).status).toBe(200);
    expect((await get('AuthService/GetMe', {})).status).toBe(200);
    // A call that changes something is never a GET.
    expect((await get('SessionService/StopSession', { sessionId })).status).toBe(405);
  });
});
