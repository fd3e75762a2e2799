import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Code, createClient, type Interceptor } from '@connectrpc/connect';
import { createConnectTransport, createGrpcTransport } from '@connectrpc/connect-node';
import { SessionService, SessionStatus } from '../../gen/switchboard/v1/session_pb.js';
import { AdminService } from '../../gen/switchboard/v1/admin_pb.js';
import type { Agent } from '../../agent/agent.js';
import { createTestAgent } from '../support/agents.js';
import { bearer } from '../support/clients.js';
import { eventually, postJson, startControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { collect } from '../support/streams.js';
import { addMember, signUp, type TestTenant } from '../support/tenants.js';

/**
 * Long-lived streams end when their caller loses access, on whichever
 * replica holds them: revoked keys, logout, removal, suspension, a role
 * without the permission. A role that merely loses the right to link stops
 * receiving QR codes. Two replicas share PostgreSQL and Redis; the stream
 * lives on B while access changes are made on A.
 */
describe('streams re-check their caller (two replicas, an agent, real PostgreSQL and Redis)', () => {
  let a: TestControlPlane;
  let b: TestControlPlane;
  let agent: Agent;
  let tenant: TestTenant;
  let sessionId: string;
  const call = (token: string, path: string, body: unknown) =>
    postJson(a.httpUrl, `switchboard.v1.${path}`, body, token);

  const grpcOnB = (interceptor: Interceptor) =>
    createClient(SessionService, createGrpcTransport({ baseUrl: b.grpcUrl, interceptors: [interceptor] }));
  const connectOnB = (interceptor: Interceptor) =>
    createClient(
      SessionService,
      createConnectTransport({ baseUrl: b.httpUrl, httpVersion: '1.1', interceptors: [interceptor] }),
    );
  /** Restarts the session (as its owner, on A) so the worker shows a fresh QR code. */
  const freshQr = async () => {
    expect((await call(tenant.accessToken, 'SessionService/RestartSession', { sessionId })).status).toBe(200);
  };
  const watch = (client: ReturnType<typeof grpcOnB>) => collect(client.watchSession({ sessionId }));

  beforeAll(async () => {
    a = await startControlPlane({ env: { SESSION_QUOTA_FREE: '10' } });
    b = await startControlPlane({ replicaOf: a });
    agent = createTestAgent(a.grpcAddress, await a.joinToken(1), { capacity: 10 });
    agent.start();
    await agent.connected();
    tenant = await signUp(a.httpUrl, 'streams');
    const created = await call(tenant.accessToken, 'SessionService/CreateSession', {
      name: 'front-desk',
      engine: 'ENGINE_SANDBOX',
    });
    sessionId = (created.json.session as { id: string }).id;
    await eventually(async () => {
      const got = await call(tenant.accessToken, 'SessionService/GetSession', { sessionId });
      return (got.json.session as { status: string }).status === 'SESSION_STATUS_SCAN_QR' ? true : undefined;
    });
  });
  afterAll(async () => {
    await agent?.stop();
    await b?.close();
    await a?.close();
  });

  it('ends an API key stream on another replica within a second of the revocation, with no QR code after it', async () => {
    const key = await call(tenant.accessToken, 'ApiKeyService/CreateApiKey', { name: 'kiosk', role: 'ROLE_DEVELOPER' });
    const secret = key.json.secret as string;
    const keyId = (key.json.apiKey as { id: string }).id;
    const stream = watch(grpcOnB(bearer(secret)));
    expect((await stream.frame((f) => Boolean(f.qrCode?.payload))).session?.status).toBe(SessionStatus.SCAN_QR);

    expect((await call(tenant.accessToken, 'ApiKeyService/RevokeApiKey', { apiKeyId: keyId })).status).toBe(200);
    const revokedAt = performance.now();
    await freshQr();

    const { error, at } = await stream.ended;
    expect(error?.code).toBe(Code.Unauthenticated);
    expect(error?.rawMessage).toMatch(/revoked/);
    expect(at - revokedAt).toBeLessThan(1000);
    expect(stream.frames.filter((f) => f.at > revokedAt && f.value.qrCode)).toEqual([]);
  });

  it("ends a developer's stream (Connect protocol) when they log out", async () => {
    const developer = await addMember(a.httpUrl, tenant, 'DEVELOPER');
    const stream = watch(connectOnB(bearer(developer.token)));
    await stream.frame((f) => f.session?.id === sessionId);
    expect((await call(developer.token, 'AuthService/Logout', {})).status).toBe(200);
    const loggedOutAt = performance.now();
    await freshQr();
    const { error } = await stream.ended;
    expect(error?.code).toBe(Code.Unauthenticated);
    expect(stream.frames.filter((f) => f.at > loggedOutAt && f.value.qrCode)).toEqual([]);
  });

  it('ends the stream of a member who is removed, and of a user who is suspended', async () => {
    const removed = await addMember(a.httpUrl, tenant, 'DEVELOPER');
    const suspended = await addMember(a.httpUrl, tenant, 'DEVELOPER');
    const removedStream = watch(grpcOnB(bearer(removed.token)));
    const suspendedStream = watch(grpcOnB(bearer(suspended.token)));
    await removedStream.frame(() => true);
    await suspendedStream.frame(() => true);

    expect((await call(tenant.accessToken, 'MemberService/RemoveMember', { userId: removed.userId })).status).toBe(200);
    expect((await removedStream.ended).error?.code).toBe(Code.Unauthenticated);

    const suspend = await call(a.adminToken, 'AdminService/SetUserStatus', {
      userId: suspended.userId,
      status: 'USER_STATUS_SUSPENDED',
    });
    expect(suspend.status).toBe(200);
    const { error } = await suspendedStream.ended;
    expect(error?.code).toBe(Code.Unauthenticated);
    expect(error?.rawMessage).toMatch(/suspended|session has ended/);
  });

  it('stops QR codes at once when a role loses the right to link, and keeps streaming the session', async () => {
    const member = await addMember(a.httpUrl, tenant, 'DEVELOPER');
    const stream = watch(grpcOnB(bearer(member.token)));
    await stream.frame((f) => Boolean(f.qrCode?.payload));

    const demoted = await call(tenant.accessToken, 'MemberService/UpdateMemberRole', {
      userId: member.userId,
      role: 'ROLE_VIEWER',
    });
    expect(demoted.status).toBe(200);
    const demotedAt = stream.frames.length;
    await freshQr();

    // The viewer still sees the session go round to SCAN_QR again, without the code.
    const scanning = await stream.frame((f) => f.session?.status === SessionStatus.SCAN_QR, demotedAt);
    expect(scanning.qrCode).toBeUndefined();
    expect(stream.frames.slice(demotedAt).filter((f) => f.value.qrCode)).toEqual([]);
    // Removing the read permission altogether ends it.
    await call(tenant.accessToken, 'MemberService/RemoveMember', { userId: member.userId });
    expect((await stream.ended).error?.code).toBe(Code.Unauthenticated);
  });

  it("holds an API key's stream to its creator's current role: a demoted creator's key gets no more QR codes", async () => {
    const creator = await addMember(a.httpUrl, tenant, 'DEVELOPER');
    const key = await call(creator.token, 'ApiKeyService/CreateApiKey', { name: 'bot', role: 'ROLE_DEVELOPER' });
    const stream = watch(grpcOnB(bearer(key.json.secret as string)));
    await stream.frame((f) => Boolean(f.qrCode?.payload));

    await call(tenant.accessToken, 'MemberService/UpdateMemberRole', { userId: creator.userId, role: 'ROLE_VIEWER' });
    const demotedAt = stream.frames.length;
    await freshQr();
    const scanning = await stream.frame((f) => f.session?.status === SessionStatus.SCAN_QR, demotedAt);
    expect(scanning.qrCode).toBeUndefined();
    // The creator leaves: the key can no longer act, and its stream ends.
    await call(tenant.accessToken, 'MemberService/RemoveMember', { userId: creator.userId });
    expect((await stream.ended).error?.code).toBe(Code.Unauthenticated);
  });

  it("ends a platform admin's WatchWorkers when they log out", async () => {
    const admin = createClient(
      AdminService,
      createGrpcTransport({ baseUrl: b.grpcUrl, interceptors: [bearer(a.adminToken)] }),
    );
    const stream = collect(admin.watchWorkers({}));
    await stream.frame((f) => f.snapshot.length > 0);
    expect((await call(a.adminToken, 'AuthService/Logout', {})).status).toBe(200);
    const { error } = await stream.ended;
    expect(error?.code).toBe(Code.Unauthenticated);
  });
});
