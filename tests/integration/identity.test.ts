import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { ApiKeyService } from '../../gen/switchboard/v1/api_key_pb.js';
import { AuthService } from '../../gen/switchboard/v1/auth_pb.js';
import { Role } from '../../gen/switchboard/v1/identity_pb.js';
import { bearer } from '../support/clients.js';
import { login, postJson, startControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { addMember, signUp, type TestTenant } from '../support/tenants.js';

const rpc = (service: string, method: string) => `switchboard.v1.${service}/${method}`;

describe('identity and access (PostgreSQL + Redis)', () => {
  let cp: TestControlPlane;
  let acme: TestTenant;
  let globex: TestTenant;

  beforeAll(async () => {
    cp = await startControlPlane({ env: { AUTH_CACHE_TTL_MS: '60000' } });
    acme = await signUp(cp.httpUrl, 'acme');
    globex = await signUp(cp.httpUrl, 'globex');
  });
  afterAll(async () => {
    await cp?.close();
  });

  const call = (path: string, body: unknown, token?: string, headers?: Record<string, string>) =>
    postJson(cp.httpUrl, path, body, token, headers);

  describe('accounts and sessions', () => {
    it('signs up an owner of a new tenant and reports them through GetMe', async () => {
      const { status, json } = await call(rpc('AuthService', 'GetMe'), {}, acme.accessToken);
      expect(status).toBe(200);
      expect(json).toMatchObject({
        user: { email: acme.email, status: 'USER_STATUS_ACTIVE' },
        tenant: { id: acme.tenantId, plan: 'free' },
        role: 'ROLE_OWNER',
        memberships: [{ tenantId: acme.tenantId, role: 'ROLE_OWNER' }],
      });
    });

    it('refuses a second account with the same email in any letter case', async () => {
      const { status, json } = await call(rpc('AuthService', 'SignUp'), {
        email: acme.email.toUpperCase(),
        password: 'another-long-password',
        displayName: 'x',
        tenantName: 'y',
      });
      expect(status).toBe(409);
      expect(json.code).toBe('already_exists');
    });

    it('answers a wrong password and an unknown email the same way', async () => {
      const wrong = await call(rpc('AuthService', 'Login'), { email: globex.email, password: 'not-the-password' });
      const unknown = await call(rpc('AuthService', 'Login'), {
        email: 'nobody@example.com',
        password: 'whatever-pass',
      });
      expect(wrong.status).toBe(401);
      expect(unknown.status).toBe(401);
      expect(wrong.json.message).toBe(unknown.json.message);
    });

    it('rotates refresh tokens and revokes the whole family when a used one is replayed', async () => {
      const user = await signUp(cp.httpUrl, 'rotate');
      const first = await call(rpc('AuthService', 'Refresh'), { refreshToken: user.refreshToken });
      expect(first.status).toBe(200);
      const rotated = first.json.tokens as { refreshToken: string; accessToken: string };
      expect(rotated.refreshToken).not.toBe(user.refreshToken);

      // The stolen (already used) token comes back: the session is revoked...
      const replay = await call(rpc('AuthService', 'Refresh'), { refreshToken: user.refreshToken });
      expect(replay.status).toBe(401);
      // ...so the legitimate holder's newer tokens stop working too.
      expect((await call(rpc('AuthService', 'Refresh'), { refreshToken: rotated.refreshToken })).status).toBe(401);
      expect((await call(rpc('AuthService', 'GetMe'), {}, rotated.accessToken)).status).toBe(401);
      expect((await call(rpc('AuthService', 'GetMe'), {}, user.accessToken)).status).toBe(401);
    });

    it('logs out: the access token and refresh token of that session stop working at once', async () => {
      const user = await signUp(cp.httpUrl, 'logout');
      expect((await call(rpc('AuthService', 'Logout'), {}, user.accessToken)).status).toBe(200);
      expect((await call(rpc('AuthService', 'GetMe'), {}, user.accessToken)).status).toBe(401);
      expect((await call(rpc('AuthService', 'Refresh'), { refreshToken: user.refreshToken })).status).toBe(401);
    });

    it('changes the password and signs out every other session', async () => {
      const user = await signUp(cp.httpUrl, 'pwchange');
      const otherSession = await login(cp.httpUrl, user.email, user.password);
      const changed = await call(
        rpc('AuthService', 'ChangePassword'),
        { currentPassword: user.password, newPassword: 'a-brand-new-password' },
        user.accessToken,
      );
      expect(changed.status).toBe(200);
      expect((await call(rpc('AuthService', 'GetMe'), {}, user.accessToken)).status).toBe(200);
      expect((await call(rpc('AuthService', 'GetMe'), {}, otherSession)).status).toBe(401);
      expect((await call(rpc('AuthService', 'Login'), { email: user.email, password: user.password })).status).toBe(
        401,
      );
      await login(cp.httpUrl, user.email, 'a-brand-new-password');
    });

    it('publishes the verification keys as JWKS, and access tokens verify against them', async () => {
      const jwks = (await (await fetch(`${cp.httpUrl}/.well-known/jwks.json`)).json()) as JSONWebKeySet;
      expect(jwks.keys.length).toBeGreaterThan(0);
      expect(jwks.keys[0]).toMatchObject({ kty: 'EC', alg: 'ES256', use: 'sig' });
      expect(jwks.keys[0]).not.toHaveProperty('d');
      const { payload, protectedHeader } = await jwtVerify(acme.accessToken, createLocalJWKSet(jwks), {
        issuer: 'switchboard',
        audience: 'switchboard-api',
      });
      expect(protectedHeader.kid).toBe(jwks.keys[0]?.kid);
      expect(payload.sub).toBe(acme.ownerId);
      expect(payload.tid).toBe(acme.tenantId);
    });

    it('refuses requests without, or with malformed, credentials', async () => {
      expect((await call(rpc('AuthService', 'GetMe'), {})).status).toBe(401);
      expect((await call(rpc('AuthService', 'GetMe'), {}, 'not-a-jwt')).status).toBe(401);
      expect((await call(rpc('AuthService', 'GetMe'), {}, undefined, { authorization: 'Basic abc' })).status).toBe(401);
    });
  });

  describe('roles', () => {
    it('lets a VIEWER read but not change anything', async () => {
      const viewer = await addMember(cp.httpUrl, acme, 'VIEWER');
      expect((await call(rpc('MemberService', 'ListMembers'), {}, viewer.token)).status).toBe(200);
      expect((await call(rpc('ApiKeyService', 'ListApiKeys'), {}, viewer.token)).status).toBe(200);
      const mutations: [string, unknown][] = [
        [rpc('ApiKeyService', 'CreateApiKey'), { name: 'x', role: 'ROLE_VIEWER' }],
        [rpc('MemberService', 'InviteMember'), { email: globex.email, role: 'ROLE_VIEWER' }],
        [rpc('MemberService', 'ListInvitations'), {}],
        [rpc('MemberService', 'RevokeInvitation'), { invitationId: globex.tenantId }],
        [rpc('MemberService', 'RemoveMember'), { userId: acme.ownerId }],
        [rpc('MemberService', 'UpdateMemberRole'), { userId: acme.ownerId, role: 'ROLE_VIEWER' }],
        [rpc('ApiKeyService', 'RevokeApiKey'), { apiKeyId: 'whatever' }],
      ];
      for (const [path, body] of mutations) {
        const { status, json } = await call(path, body, viewer.token);
        expect({ path, status, code: json.code }).toEqual({ path, status: 403, code: 'permission_denied' });
      }
      expect((await call(rpc('AuditService', 'ListAuditEvents'), {}, viewer.token)).status).toBe(403);
    });

    it('never lets a role grant more than it has', async () => {
      const developer = await addMember(cp.httpUrl, acme, 'DEVELOPER');
      const tooHigh = await call(
        rpc('ApiKeyService', 'CreateApiKey'),
        { name: 'x', role: 'ROLE_ADMIN' },
        developer.token,
      );
      expect(tooHigh.status).toBe(403);
      expect(tooHigh.json.message).toBe('role DEVELOPER cannot create an ADMIN key');
      const ok = await call(
        rpc('ApiKeyService', 'CreateApiKey'),
        { name: 'x', role: 'ROLE_DEVELOPER' },
        developer.token,
      );
      expect(ok.status).toBe(200);
      const admin = await addMember(cp.httpUrl, acme, 'ADMIN');
      const makeOwner = await call(
        rpc('MemberService', 'UpdateMemberRole'),
        { userId: developer.userId, role: 'ROLE_OWNER' },
        admin.token,
      );
      expect(makeOwner.status).toBe(403);
      const demoteOwner = await call(
        rpc('MemberService', 'UpdateMemberRole'),
        { userId: acme.ownerId, role: 'ROLE_VIEWER' },
        admin.token,
      );
      expect(demoteOwner.status).toBe(403);
    });

    it('applies a role change and a removal to the member’s existing token', async () => {
      const member = await addMember(cp.httpUrl, acme, 'DEVELOPER');
      const before = await call(rpc('AuthService', 'GetMe'), {}, member.token);
      expect(before.json.role).toBe('ROLE_DEVELOPER');
      await call(
        rpc('MemberService', 'UpdateMemberRole'),
        { userId: member.userId, role: 'ROLE_VIEWER' },
        acme.accessToken,
      );
      expect((await call(rpc('AuthService', 'GetMe'), {}, member.token)).json.role).toBe('ROLE_VIEWER');
      expect(
        (await call(rpc('MemberService', 'RemoveMember'), { userId: member.userId }, acme.accessToken)).status,
      ).toBe(200);
      expect((await call(rpc('AuthService', 'GetMe'), {}, member.token)).status).toBe(401);
    });

    it('keeps at least one owner', async () => {
      const { status, json } = await call(
        rpc('MemberService', 'RemoveMember'),
        { userId: globex.ownerId },
        globex.accessToken,
      );
      expect(status).toBe(400);
      expect(json.code).toBe('failed_precondition');
    });

    it('keeps platform RPCs for platform admins', async () => {
      for (const path of [rpc('AdminService', 'ListWorkers'), rpc('AdminService', 'CreateJoinToken')]) {
        expect((await call(path, {})).status).toBe(401);
        expect((await call(path, {}, acme.accessToken)).status).toBe(403);
        expect((await call(path, {}, cp.adminToken)).status).toBe(200);
      }
    });

    it('suspends a user everywhere and reactivates them', async () => {
      const user = await signUp(cp.httpUrl, 'suspend');
      const suspend = await call(
        rpc('AdminService', 'SetUserStatus'),
        { userId: user.ownerId, status: 'USER_STATUS_SUSPENDED' },
        cp.adminToken,
      );
      expect(suspend.status).toBe(200);
      expect((await call(rpc('AuthService', 'GetMe'), {}, user.accessToken)).status).toBe(401);
      expect((await call(rpc('AuthService', 'Login'), { email: user.email, password: user.password })).status).toBe(
        401,
      );
      await call(
        rpc('AdminService', 'SetUserStatus'),
        { userId: user.ownerId, status: 'USER_STATUS_ACTIVE' },
        cp.adminToken,
      );
      await login(cp.httpUrl, user.email, user.password);
    });
  });

  describe('API keys', () => {
    it('returns the secret once, authenticates with Bearer and x-api-key over Connect and gRPC, and fails right after revocation', async () => {
      const created = await call(
        rpc('ApiKeyService', 'CreateApiKey'),
        { name: 'backend', role: 'ROLE_DEVELOPER' },
        acme.accessToken,
      );
      expect(created.status).toBe(200);
      const secret = created.json.secret as string;
      const id = (created.json.apiKey as { id: string }).id;
      expect(secret).toMatch(new RegExp(`^sb_live_${id}_[A-Za-z0-9_-]{43}$`));

      const listed = await call(rpc('ApiKeyService', 'ListApiKeys'), {}, acme.accessToken);
      expect(JSON.stringify(listed.json)).not.toContain(secret.split('_').at(-1));
      expect((listed.json.apiKeys as { id: string }[]).map((k) => k.id)).toContain(id);

      const viaBearer = await call(rpc('AuthService', 'GetMe'), {}, secret);
      expect(viaBearer.json).toMatchObject({ apiKeyId: id, role: 'ROLE_DEVELOPER', tenant: { id: acme.tenantId } });
      expect((await call(rpc('AuthService', 'GetMe'), {}, undefined, { 'x-api-key': secret })).status).toBe(200);
      const grpc = createClient(
        AuthService,
        createGrpcTransport({ baseUrl: cp.grpcUrl, interceptors: [bearer(secret)] }),
      );
      expect((await grpc.getMe({})).apiKeyId).toBe(id);

      expect((await call(rpc('ApiKeyService', 'RevokeApiKey'), { apiKeyId: id }, acme.accessToken)).status).toBe(200);
      expect((await call(rpc('AuthService', 'GetMe'), {}, secret)).status).toBe(401);
      await expect(grpc.getMe({})).rejects.toMatchObject({ code: Code.Unauthenticated });
    });

    it('refuses a key whose secret is wrong, and an expired key', async () => {
      const created = await call(
        rpc('ApiKeyService', 'CreateApiKey'),
        { name: 'k', role: 'ROLE_VIEWER' },
        acme.accessToken,
      );
      const secret = created.json.secret as string;
      const tampered = `${secret.slice(0, -4)}AAAA`;
      expect((await call(rpc('AuthService', 'GetMe'), {}, tampered)).status).toBe(401);
      const past = await call(
        rpc('ApiKeyService', 'CreateApiKey'),
        { name: 'k', role: 'ROLE_VIEWER', expiresAt: '2020-01-01T00:00:00Z' },
        acme.accessToken,
      );
      expect(past.status).toBe(400);
      expect(String(past.json.message)).toContain('expires_at');
    });

    it('lets only people create keys, and no role revoke a key above it', async () => {
      const created = await call(
        rpc('ApiKeyService', 'CreateApiKey'),
        { name: 'parent', role: 'ROLE_ADMIN' },
        acme.accessToken,
      );
      const parent = created.json.secret as string;
      const child = await call(rpc('ApiKeyService', 'CreateApiKey'), { name: 'child', role: 'ROLE_VIEWER' }, parent);
      expect(child.status).toBe(403);
      const developer = await addMember(cp.httpUrl, acme, 'DEVELOPER');
      const adminKeyId = (created.json.apiKey as { id: string }).id;
      const revoke = await call(rpc('ApiKeyService', 'RevokeApiKey'), { apiKeyId: adminKeyId }, developer.token);
      expect(revoke.status).toBe(403);
      expect(revoke.json.message).toBe('your role cannot revoke an ADMIN key');
      expect((await call(rpc('AuthService', 'GetMe'), {}, parent)).status).toBe(200);
      const blank = await call(
        rpc('ApiKeyService', 'CreateApiKey'),
        { name: '   ', role: 'ROLE_VIEWER' },
        acme.accessToken,
      );
      expect(blank.status).toBe(400);
    });

    it('revokes the keys of a member who is removed from the tenant', async () => {
      const member = await addMember(cp.httpUrl, acme, 'DEVELOPER');
      const key = await call(rpc('ApiKeyService', 'CreateApiKey'), { name: 'm', role: 'ROLE_VIEWER' }, member.token);
      const secret = key.json.secret as string;
      expect((await call(rpc('AuthService', 'GetMe'), {}, secret)).status).toBe(200);
      const removed = await call(rpc('MemberService', 'RemoveMember'), { userId: member.userId }, acme.accessToken);
      expect(removed.json).toEqual({});
      expect((await call(rpc('AuthService', 'GetMe'), {}, secret)).json).toMatchObject({ code: 'unauthenticated' });
      const listed = await call(rpc('ApiKeyService', 'ListApiKeys'), { includeInactive: true }, acme.accessToken);
      const row = (listed.json.apiKeys as { id: string; revokedAt?: string }[]).find(
        (k) => k.id === (key.json.apiKey as { id: string }).id,
      );
      expect(row?.revokedAt).toBeDefined();
    });

    it('makes the keys of a suspended user inactive in every tenant; reactivation brings back those nobody revoked', async () => {
      const dana = await signUp(cp.httpUrl, 'dana');
      const invited = await call(
        rpc('MemberService', 'InviteMember'),
        { email: dana.email, role: 'ROLE_DEVELOPER' },
        acme.accessToken,
      );
      await call(rpc('MemberService', 'AcceptInvitation'), { token: invited.json.token }, dana.accessToken);
      const inAcme = await login(cp.httpUrl, dana.email, dana.password, acme.tenantId);
      const createKey = async (token: string) => {
        const { json } = await call(rpc('ApiKeyService', 'CreateApiKey'), { name: 'd', role: 'ROLE_VIEWER' }, token);
        return { id: (json.apiKey as { id: string }).id, secret: json.secret as string };
      };
      const [own, acmeKey, revokedMeanwhile] = [
        await createKey(dana.accessToken),
        await createKey(inAcme),
        await createKey(inAcme),
      ];
      const getMe = (secret: string) => call(rpc('AuthService', 'GetMe'), {}, secret);
      const setStatus = (status: string) =>
        call(rpc('AdminService', 'SetUserStatus'), { userId: dana.ownerId, status }, cp.adminToken);

      expect((await setStatus('USER_STATUS_SUSPENDED')).status).toBe(200);
      for (const key of [own, acmeKey, revokedMeanwhile]) {
        expect((await getMe(key.secret)).json).toMatchObject({
          code: 'unauthenticated',
          message: expect.stringMatching(/suspended/) as unknown,
        });
      }
      // Inactive, not revoked: the tenant sees them as they were, and may still revoke one.
      const listed = await call(rpc('ApiKeyService', 'ListApiKeys'), { includeInactive: true }, acme.accessToken);
      const rows = (listed.json.apiKeys as { id: string; revokedAt?: string }[]).filter((k) =>
        [acmeKey.id, revokedMeanwhile.id].includes(k.id),
      );
      expect(rows.map((k) => k.revokedAt)).toEqual([undefined, undefined]);
      const revoked = await call(
        rpc('ApiKeyService', 'RevokeApiKey'),
        { apiKeyId: revokedMeanwhile.id },
        acme.accessToken,
      );
      expect(revoked.status).toBe(200);

      expect((await setStatus('USER_STATUS_ACTIVE')).status).toBe(200);
      expect((await getMe(own.secret)).status).toBe(200);
      expect((await getMe(acmeKey.secret)).status).toBe(200);
      expect((await getMe(revokedMeanwhile.secret)).json).toMatchObject({ code: 'unauthenticated' });
    });

    it('lets an API key never reach platform RPCs nor user-only ones', async () => {
      const created = await call(
        rpc('ApiKeyService', 'CreateApiKey'),
        { name: 'k', role: 'ROLE_ADMIN' },
        acme.accessToken,
      );
      const secret = created.json.secret as string;
      expect((await call(rpc('AdminService', 'ListWorkers'), {}, secret)).status).toBe(403);
      expect((await call(rpc('AuthService', 'Logout'), {}, secret)).status).toBe(403);
    });
  });

  describe('tenant isolation: another tenant’s ids are NOT_FOUND', () => {
    it('for RevokeApiKey', async () => {
      const theirs = await call(
        rpc('ApiKeyService', 'CreateApiKey'),
        { name: 'g', role: 'ROLE_VIEWER' },
        globex.accessToken,
      );
      const id = (theirs.json.apiKey as { id: string }).id;
      const { status, json } = await call(rpc('ApiKeyService', 'RevokeApiKey'), { apiKeyId: id }, acme.accessToken);
      expect(status).toBe(404);
      expect(json.code).toBe('not_found');
      // Still working for its owner.
      expect((await call(rpc('AuthService', 'GetMe'), {}, theirs.json.secret as string)).status).toBe(200);
    });

    it('for UpdateMemberRole and RemoveMember', async () => {
      for (const [path, body] of [
        [rpc('MemberService', 'UpdateMemberRole'), { userId: globex.ownerId, role: 'ROLE_VIEWER' }],
        [rpc('MemberService', 'RemoveMember'), { userId: globex.ownerId }],
      ] as const) {
        const { status } = await call(path, body, acme.accessToken);
        expect(status).toBe(404);
      }
      expect((await call(rpc('AuthService', 'GetMe'), {}, globex.accessToken)).json.role).toBe('ROLE_OWNER');
    });

    it('for Login into a tenant the user does not belong to', async () => {
      const { status } = await call(rpc('AuthService', 'Login'), {
        email: acme.email,
        password: acme.password,
        tenantId: globex.tenantId,
      });
      expect(status).toBe(404);
    });

    it('for list RPCs, which show only the caller’s tenant', async () => {
      const members = await call(rpc('MemberService', 'ListMembers'), {}, acme.accessToken);
      expect((members.json.members as { userId: string }[]).map((m) => m.userId)).not.toContain(globex.ownerId);
      const keys = await call(rpc('ApiKeyService', 'ListApiKeys'), { includeInactive: true }, globex.accessToken);
      const acmeKeys = await call(rpc('ApiKeyService', 'ListApiKeys'), { includeInactive: true }, acme.accessToken);
      const globexIds = new Set((keys.json.apiKeys as { id: string }[]).map((k) => k.id));
      for (const key of acmeKeys.json.apiKeys as { id: string }[]) expect(globexIds.has(key.id)).toBe(false);
      const audit = await call(rpc('AuditService', 'ListAuditEvents'), { pageSize: 1000 }, acme.accessToken);
      for (const event of audit.json.events as { tenantId?: string }[]) {
        expect([acme.tenantId, undefined]).toContain(event.tenantId);
      }
      const chooseTenant = await call(
        rpc('AuditService', 'ListAuditEvents'),
        { tenantId: globex.tenantId },
        acme.accessToken,
      );
      expect(chooseTenant.status).toBe(403);
    });
  });

  describe('audit log', () => {
    it('records security events with actor, target, IP and user agent', async () => {
      const user = await signUp(cp.httpUrl, 'audited');
      await call(rpc('AuthService', 'Login'), { email: user.email, password: 'wrong-password!' });
      await login(cp.httpUrl, user.email, user.password);
      const key = await call(
        rpc('ApiKeyService', 'CreateApiKey'),
        { name: 'a', role: 'ROLE_VIEWER' },
        user.accessToken,
        {
          'user-agent': 'audit-test/1.0',
        },
      );
      const keyId = (key.json.apiKey as { id: string }).id;
      await call(rpc('ApiKeyService', 'RevokeApiKey'), { apiKeyId: keyId }, user.accessToken);
      await call(
        rpc('AuthService', 'ChangePassword'),
        { currentPassword: user.password, newPassword: 'another-password-1' },
        user.accessToken,
      );
      const own = await call(rpc('AuditService', 'ListAuditEvents'), { pageSize: 100 }, user.accessToken);
      const events = own.json.events as {
        action: string;
        targetId: string;
        ip: string;
        userAgent: string;
        actorUserId?: string;
      }[];
      const actions = events.map((e) => e.action);
      for (const action of [
        'auth.signed_up',
        'auth.login.succeeded',
        'api_key.created',
        'api_key.revoked',
        'auth.password_changed',
      ]) {
        expect(actions).toContain(action);
      }
      const created = events.find((e) => e.action === 'api_key.created');
      expect(created).toMatchObject({ targetId: keyId, userAgent: 'audit-test/1.0', actorUserId: user.ownerId });
      expect(created?.ip).toMatch(/127\.0\.0\.1/);

      // Failed logins carry no tenant; platform admins see them, naming a known user by id.
      const all = await call(
        rpc('AuditService', 'ListAuditEvents'),
        { actionPrefix: 'auth.login.failed', pageSize: 1000 },
        cp.adminToken,
      );
      const failed = (all.json.events as { targetId: string; details?: Record<string, string> }[]).find(
        (e) => e.targetId === user.ownerId,
      );
      expect(failed?.details).toEqual({ reason: 'wrong password' });
      const filtered = await call(rpc('AuditService', 'ListAuditEvents'), { tenantId: user.tenantId }, cp.adminToken);
      expect((filtered.json.events as unknown[]).length).toBeGreaterThanOrEqual(4);
    });

    it('pages newest first', async () => {
      const first = await call(rpc('AuditService', 'ListAuditEvents'), { pageSize: 2 }, cp.adminToken);
      const second = await call(
        rpc('AuditService', 'ListAuditEvents'),
        { pageSize: 2, pageToken: first.json.nextPageToken },
        cp.adminToken,
      );
      const times = [
        ...(first.json.events as { occurredAt: string }[]),
        ...(second.json.events as { occurredAt: string }[]),
      ].map((e) => e.occurredAt);
      expect(times).toHaveLength(4);
      expect([...times].sort().reverse()).toEqual(times);
    });
  });

  describe('input validation (protovalidate)', () => {
    it('refuses bad input with INVALID_ARGUMENT naming the field, and writes nothing', async () => {
      const email = `not-an-email-${Date.now()}`;
      const { status, json } = await call(rpc('AuthService', 'SignUp'), {
        email,
        password: 'short',
        displayName: 'x',
        tenantName: 'y',
      });
      expect(status).toBe(400);
      expect(json.code).toBe('invalid_argument');
      expect(String(json.message)).toContain('email');
      expect(String(json.message)).toContain('password');
      const grpc = createClient(
        ApiKeyService,
        createGrpcTransport({ baseUrl: cp.grpcUrl, interceptors: [bearer(acme.accessToken)] }),
      );
      const error = await grpc
        .createApiKey({ name: '', role: Role.VIEWER })
        .catch((e: unknown) => ConnectError.from(e));
      expect(error).toBeInstanceOf(ConnectError);
      expect((error as ConnectError).code).toBe(Code.InvalidArgument);
      expect((error as ConnectError).rawMessage).toContain('name');
    });
  });
});
