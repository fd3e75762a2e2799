import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { Code, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { SessionService, SessionStatus, type WatchSessionResponse } from '../../gen/switchboard/v1/session_pb.js';
import { ManualScheduler } from '../../lib/timers.js';
import { bearer } from '../support/clients.js';
import { postJson, startControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { collect, type CollectedStream } from '../support/streams.js';
import { signUp } from '../support/tenants.js';

const MINUTE = 60_000;

/**
 * The time rules of long-lived streams, on a fake clock: a stream ends when
 * its access token or API key expires, after its maximum lifetime, and on
 * the periodic re-check even when no invalidation message ever arrives.
 */
describe('stream lifetime on a fake clock (real PostgreSQL and Redis)', () => {
  let cp: TestControlPlane;
  const time = new ManualScheduler(new Date());
  const call = (token: string, path: string, body: unknown) =>
    postJson(cp.httpUrl, `switchboard.v1.${path}`, body, token);
  const sessionsAs = (token: string) =>
    createClient(SessionService, createGrpcTransport({ baseUrl: cp.grpcUrl, interceptors: [bearer(token)] }));

  /**
   * A tenant signed up now (its token is fresh on the fake clock) with a
   * stopped session; start/stop give its watchers a frame, the proof that a
   * stream is still open.
   */
  const freshTenant = async () => {
    const tenant = await signUp(cp.httpUrl, 'clock');
    const created = await call(tenant.accessToken, 'SessionService/CreateSession', {
      name: 'lobby',
      engine: 'ENGINE_SANDBOX',
    });
    const sessionId = (created.json.session as { id: string }).id;
    await call(tenant.accessToken, 'SessionService/StopSession', { sessionId });
    let stopped = true;
    const stillOpen = async (stream: CollectedStream<WatchSessionResponse>, as = tenant.accessToken) => {
      const from = stream.frames.length;
      const toggled = await call(as, `SessionService/${stopped ? 'StartSession' : 'StopSession'}`, { sessionId });
      expect(toggled.status).toBe(200);
      const status = stopped ? SessionStatus.PENDING : SessionStatus.STOPPED;
      stopped = !stopped;
      await stream.frame((f) => f.session?.status === status, from);
    };
    const key = async (name: string, extra: Record<string, unknown> = {}) => {
      const created = await call(tenant.accessToken, 'ApiKeyService/CreateApiKey', {
        name,
        role: 'ROLE_DEVELOPER',
        ...extra,
      });
      expect(created.status).toBe(200);
      return { secret: created.json.secret as string, id: (created.json.apiKey as { id: string }).id };
    };
    return { tenant, sessionId, stillOpen, key };
  };

  beforeAll(async () => {
    cp = await startControlPlane({
      env: {
        ACCESS_TOKEN_TTL_MS: String(10 * MINUTE),
        STREAM_MAX_LIFETIME_MS: String(60 * MINUTE),
        STREAM_RECHECK_INTERVAL_MS: String(30 * MINUTE),
      },
      overrides: { clock: time, scheduler: time },
    });
  });
  afterAll(async () => {
    await cp?.close();
  });

  it('ends a stream when its access token expires, not before', async () => {
    const { tenant, sessionId, stillOpen } = await freshTenant();
    const stream = collect(sessionsAs(tenant.accessToken).watchSession({ sessionId }));
    await stream.frame(() => true);
    time.advance(9 * MINUTE);
    await stillOpen(stream);
    time.advance(MINUTE + 1000);
    const { error } = await stream.ended;
    expect(error?.code).toBe(Code.Unauthenticated);
    expect(error?.rawMessage).toMatch(/access token expired/);
  });

  it('ends an API key stream when the key expires', async () => {
    const { sessionId, stillOpen, key } = await freshTenant();
    const { secret } = await key('short-lived', {
      expiresAt: new Date(time.now().getTime() + 5 * MINUTE).toISOString(),
    });
    const stream = collect(sessionsAs(secret).watchSession({ sessionId }));
    await stream.frame(() => true);
    time.advance(4 * MINUTE);
    await stillOpen(stream);
    time.advance(MINUTE + 1000);
    const { error } = await stream.ended;
    expect(error?.code).toBe(Code.Unauthenticated);
    expect(error?.rawMessage).toMatch(/API key expired/);
  });

  it('ends every stream after its maximum lifetime, so the client comes back with a fresh credential', async () => {
    const { sessionId, key, stillOpen } = await freshTenant();
    const { secret } = await key('forever');
    const stream = collect(sessionsAs(secret).watchSession({ sessionId }));
    await stream.frame(() => true);
    time.advance(59 * MINUTE);
    await stillOpen(stream, secret); // the owner's token has expired on the fake clock; the key has not
    time.advance(MINUTE + 1000);
    const { error } = await stream.ended;
    expect(error?.code).toBe(Code.Unavailable);
    expect(error?.rawMessage).toMatch(/maximum lifetime/);
  });

  it('ends a stream on the periodic re-check when the revocation message was lost', async () => {
    const { sessionId, stillOpen, key } = await freshTenant();
    const { secret, id } = await key('lost');
    const stream = collect(sessionsAs(secret).watchSession({ sessionId }));
    await stream.frame(() => true);

    // Revoked behind the control plane's back: no invalidation is published.
    const db = new pg.Client({ connectionString: cp.databaseUrl });
    await db.connect();
    await db.query('update api_key set revoked_at = now() where id = $1', [id]);
    await db.end();
    await stillOpen(stream);

    time.advance(9 * MINUTE); // past the key cache's TTL, before the first re-check (30 min ± 10%)
    await stillOpen(stream);
    time.advance(25 * MINUTE);
    const { error } = await stream.ended;
    expect(error?.code).toBe(Code.Unauthenticated);
    expect(error?.rawMessage).toMatch(/revoked/);
  });
});
