import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Code, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { AuditService } from '../../gen/switchboard/v1/audit_pb.js';
import { Role } from '../../gen/switchboard/v1/identity_pb.js';
import { MemberService } from '../../gen/switchboard/v1/member_pb.js';
import { ApiKey } from '../../src/identity/api-key.entity.js';
import { Membership } from '../../src/identity/account.entity.js';
import { bearer } from '../support/clients.js';
import { postJson, startControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { addMember, signUp, type TestTenant } from '../support/tenants.js';

const rpc = (path: string) => `switchboard.v1.${path}`;

describe('members and the API keys of members (PostgreSQL + Redis)', () => {
  let cp: TestControlPlane;
  // A second replica: what one replica changes must apply on the other at once.
  let replica: TestControlPlane;
  let acme: TestTenant;

  beforeAll(async () => {
    // A long cache TTL: only invalidation, never expiry, can make these tests pass.
    cp = await startControlPlane({ env: { AUTH_CACHE_TTL_MS: '60000' } });
    replica = await startControlPlane({ env: { AUTH_CACHE_TTL_MS: '60000' }, replicaOf: cp });
    acme = await signUp(cp.httpUrl, 'acme');
  });
  afterAll(async () => {
    await replica?.close();
    await cp?.close();
  });

  const call = (path: string, body: unknown, token?: string, on: TestControlPlane = cp) =>
    postJson(on.httpUrl, rpc(path), body, token);

  async function createKey(token: string, role: string): Promise<{ id: string; secret: string }> {
    const { status, json } = await call('ApiKeyService/CreateApiKey', { name: 'key', role }, token);
    if (status !== 200) throw new Error(`create key failed: ${JSON.stringify(json)}`);
    return { id: (json.apiKey as { id: string }).id, secret: json.secret as string };
  }

  async function roleOf(userId: string): Promise<string | undefined> {
    const { json } = await call('MemberService/ListMembers', {}, acme.accessToken);
    return (json.members as { userId: string; role: string }[]).find((m) => m.userId === userId)?.role;
  }

  describe('member management is for people, never API keys', () => {
    it('refuses an ADMIN API key every member change and role grant, over Connect and gRPC, and writes nothing', async () => {
      const developer = await addMember(cp.httpUrl, acme, 'DEVELOPER');
      const outsider = await signUp(cp.httpUrl, 'outsider');
      const key = await createKey(acme.accessToken, 'ROLE_ADMIN');
      const attempts: [string, unknown][] = [
        ['MemberService/AddMember', { email: outsider.email, role: 'ROLE_ADMIN' }],
        ['MemberService/UpdateMemberRole', { userId: developer.userId, role: 'ROLE_ADMIN' }],
        ['MemberService/RemoveMember', { userId: developer.userId }],
        ['ApiKeyService/CreateApiKey', { name: 'child', role: 'ROLE_VIEWER' }],
      ];
      for (const [path, body] of attempts) {
        const { status, json } = await call(path, body, key.secret);
        expect({ path, status, code: json.code }).toEqual({ path, status: 403, code: 'permission_denied' });
      }
      const grpc = createClient(
        MemberService,
        createGrpcTransport({ baseUrl: cp.grpcUrl, interceptors: [bearer(key.secret)] }),
      );
      await expect(grpc.updateMemberRole({ userId: developer.userId, role: Role.ADMIN })).rejects.toMatchObject({
        code: Code.PermissionDenied,
      });
      await expect(grpc.removeMember({ userId: developer.userId })).rejects.toMatchObject({
        code: Code.PermissionDenied,
      });

      // Nothing changed: the developer is still a developer, the outsider is not in the tenant.
      expect(await roleOf(developer.userId)).toBe('ROLE_DEVELOPER');
      expect(await roleOf(outsider.ownerId)).toBeUndefined();
      const outsiderMe = await call('AuthService/GetMe', {}, outsider.accessToken);
      expect((outsiderMe.json.memberships as { tenantId: string }[]).map((m) => m.tenantId)).toEqual([
        outsider.tenantId,
      ]);
      // The key still reads, so it was refused for what it tried, not for being broken.
      expect((await call('MemberService/ListMembers', {}, key.secret)).status).toBe(200);
    });
  });

  describe('an API key acts with no more than its creator’s current role', () => {
    it('drops an ADMIN key to DEVELOPER the moment its creator is demoted, on every replica', async () => {
      const admin = await addMember(cp.httpUrl, acme, 'ADMIN');
      const key = await createKey(admin.token, 'ROLE_ADMIN');
      const ownersKey = await createKey(acme.accessToken, 'ROLE_ADMIN');
      // The replica caches the key with ADMIN power (the audit log is for admins).
      expect((await call('AuthService/GetMe', {}, key.secret, replica)).json.role).toBe('ROLE_ADMIN');
      expect((await call('AuditService/ListAuditEvents', {}, key.secret, replica)).status).toBe(200);

      const demoted = await call(
        'MemberService/UpdateMemberRole',
        { userId: admin.userId, role: 'ROLE_DEVELOPER' },
        acme.accessToken,
      );
      expect(demoted.status).toBe(200);

      // At once on the other replica, despite its minute-long cache.
      expect((await call('AuthService/GetMe', {}, key.secret, replica)).json.role).toBe('ROLE_DEVELOPER');
      const audit = await call('AuditService/ListAuditEvents', {}, key.secret, replica);
      expect({ status: audit.status, code: audit.json.code }).toEqual({ status: 403, code: 'permission_denied' });
      const revoke = await call('ApiKeyService/RevokeApiKey', { apiKeyId: ownersKey.id }, key.secret, replica);
      expect({ status: revoke.status, code: revoke.json.code }).toEqual({ status: 403, code: 'permission_denied' });
      const grpc = createClient(
        AuditService,
        createGrpcTransport({ baseUrl: replica.grpcUrl, interceptors: [bearer(key.secret)] }),
      );
      await expect(grpc.listAuditEvents({})).rejects.toMatchObject({ code: Code.PermissionDenied });
      // What a DEVELOPER may do, the key still does; the owner's key was not revoked.
      expect((await call('ApiKeyService/ListApiKeys', {}, key.secret, replica)).status).toBe(200);
      expect((await call('AuthService/GetMe', {}, ownersKey.secret, replica)).status).toBe(200);

      // Promoted again, the key gets its own role back: the creator's role is a ceiling, not a revocation.
      await call('MemberService/UpdateMemberRole', { userId: admin.userId, role: 'ROLE_ADMIN' }, acme.accessToken);
      expect((await call('AuditService/ListAuditEvents', {}, key.secret, replica)).status).toBe(200);
    });

    it('refuses a key whose creator is no longer a member or is unknown, even if it was never revoked', async () => {
      const developer = await addMember(cp.httpUrl, acme, 'DEVELOPER');
      const left = await createKey(developer.token, 'ROLE_VIEWER');
      const orphan = await createKey(acme.accessToken, 'ROLE_VIEWER');
      expect((await call('AuthService/GetMe', {}, left.secret)).status).toBe(200);
      expect((await call('AuthService/GetMe', {}, orphan.secret)).status).toBe(200);

      // Rows as an older version (keys minted by keys) or a manual database change could leave them.
      const em = cp.app.database.orm.em.fork();
      await em.nativeDelete(Membership, { tenantId: acme.tenantId, userId: developer.userId });
      await em.nativeUpdate(ApiKey, { id: orphan.id }, { createdByUserId: null });
      for (const key of [left, orphan]) {
        cp.app.identity.apiKeys.forget(key.id);
        const { status, json } = await call('AuthService/GetMe', {}, key.secret);
        expect({ status, code: json.code }).toEqual({ status: 401, code: 'unauthenticated' });
      }
    });
  });
});
