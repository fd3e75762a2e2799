import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Code, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { AuditService } from '../../gen/switchboard/v1/audit_pb.js';
import { Role } from '../../gen/switchboard/v1/identity_pb.js';
import { MemberService } from '../../gen/switchboard/v1/member_pb.js';
import { ApiKey } from '../../src/identity/api-key.entity.js';
import { Membership } from '../../src/identity/account.entity.js';
import { ManualClock } from '../../lib/clock.js';
import { bearer } from '../support/clients.js';
import { login, postJson, startControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { addMember, signUp, type TestTenant } from '../support/tenants.js';

const rpc = (path: string) => `switchboard.v1.${path}`;
const hex = () => randomBytes(4).toString('hex');

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

  const grpcMembers = (token: string, on: TestControlPlane = cp) =>
    createClient(MemberService, createGrpcTransport({ baseUrl: on.grpcUrl, interceptors: [bearer(token)] }));

  async function invite(
    token: string,
    email: string,
    role = 'ROLE_DEVELOPER',
    on: TestControlPlane = cp,
  ): Promise<{ id: string; token: string }> {
    const { status, json } = await call('MemberService/InviteMember', { email, role }, token, on);
    if (status !== 200) throw new Error(`invitation failed: ${JSON.stringify(json)}`);
    return { id: (json.invitation as { id: string }).id, token: json.token as string };
  }

  const accept = (invitationToken: string, userToken: string, on: TestControlPlane = cp) =>
    call('MemberService/AcceptInvitation', { token: invitationToken }, userToken, on);

  async function pendingInvitations(token = acme.accessToken, on: TestControlPlane = cp) {
    const { json } = await call('MemberService/ListInvitations', { pageSize: 1000 }, token, on);
    return json.invitations as { id: string; email: string; role: string; invitedByUserId: string }[];
  }

  async function tenantsOf(userToken: string): Promise<string[]> {
    const { json } = await call('AuthService/GetMe', {}, userToken);
    return (json.memberships as { tenantId: string }[]).map((m) => m.tenantId);
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
      const pending = await invite(acme.accessToken, `pending-${hex()}@example.com`);
      const attempts: [string, unknown][] = [
        ['MemberService/InviteMember', { email: outsider.email, role: 'ROLE_ADMIN' }],
        ['MemberService/ListInvitations', {}],
        ['MemberService/RevokeInvitation', { invitationId: pending.id }],
        ['MemberService/AcceptInvitation', { token: pending.token }],
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
      await expect(grpc.inviteMember({ email: outsider.email, role: Role.ADMIN })).rejects.toMatchObject({
        code: Code.PermissionDenied,
      });

      // Nothing changed: the developer is still a developer, the outsider is neither in the tenant nor
      // invited, and the pending invitation is still pending.
      expect(await roleOf(developer.userId)).toBe('ROLE_DEVELOPER');
      expect(await roleOf(outsider.ownerId)).toBeUndefined();
      expect((await pendingInvitations()).map((i) => i.email)).not.toContain(outsider.email);
      expect((await pendingInvitations()).map((i) => i.id)).toContain(pending.id);
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

  describe('joining a tenant takes the invitee’s consent', () => {
    it('has no way to put a person into a tenant without their consent: AddMember is gone', async () => {
      const outsider = await signUp(cp.httpUrl, 'unasked');
      const response = await fetch(`${cp.httpUrl}/${rpc('MemberService/AddMember')}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${acme.accessToken}` },
        body: JSON.stringify({ email: outsider.email, role: 'ROLE_ADMIN' }),
      });
      expect(response.status).toBe(404);
      expect(await tenantsOf(outsider.accessToken)).toEqual([outsider.tenantId]);
      expect(await roleOf(outsider.ownerId)).toBeUndefined();
    });

    it('keeps an invited person out until they accept, then lets them in with the invited role', async () => {
      const bob = await signUp(cp.httpUrl, 'bob');
      const invited = await call(
        'MemberService/InviteMember',
        { email: bob.email.toUpperCase(), role: 'ROLE_DEVELOPER' },
        acme.accessToken,
      );
      expect(invited.status).toBe(200);
      const token = invited.json.token as string;
      expect(token).toMatch(/^sbi_[A-Za-z0-9_-]{43}$/);
      const invitation = invited.json.invitation as { id: string; createdAt: string; expiresAt: string };
      expect(invitation).toMatchObject({
        email: bob.email.toUpperCase(),
        role: 'ROLE_DEVELOPER',
        invitedByUserId: acme.ownerId,
      });
      // Seven days by default (INVITATION_TTL_MS).
      expect(Date.parse(invitation.expiresAt) - Date.parse(invitation.createdAt)).toBe(7 * 24 * 3600_000);

      // Invited is not joined: not in their GetMe, not in the member list, no login into the tenant.
      expect(await tenantsOf(bob.accessToken)).toEqual([bob.tenantId]);
      expect(await roleOf(bob.ownerId)).toBeUndefined();
      const early = await call('AuthService/Login', {
        email: bob.email,
        password: bob.password,
        tenantId: acme.tenantId,
      });
      expect(early.status).toBe(404);

      // Bob accepts (over gRPC): now a developer of the tenant.
      const accepted = await grpcMembers(bob.accessToken).acceptInvitation({ token });
      expect(accepted.membership).toMatchObject({ tenantId: acme.tenantId, role: Role.DEVELOPER });
      expect(await tenantsOf(bob.accessToken)).toEqual([bob.tenantId, acme.tenantId]);
      expect(await roleOf(bob.ownerId)).toBe('ROLE_DEVELOPER');
      const inAcme = await login(cp.httpUrl, bob.email, bob.password, acme.tenantId);
      expect((await call('AuthService/GetMe', {}, inAcme)).json).toMatchObject({
        tenant: { id: acme.tenantId },
        role: 'ROLE_DEVELOPER',
      });
      expect((await pendingInvitations()).map((i) => i.id)).not.toContain(invitation.id);

      const audit = await call('AuditService/ListAuditEvents', { pageSize: 1000 }, acme.accessToken);
      const events = audit.json.events as { action: string; targetId: string; actorUserId?: string }[];
      expect(events).toContainEqual(
        expect.objectContaining({ action: 'invitation.created', targetId: invitation.id, actorUserId: acme.ownerId }),
      );
      expect(events).toContainEqual(
        expect.objectContaining({ action: 'member.joined', targetId: bob.ownerId, actorUserId: bob.ownerId }),
      );
    });

    it('answers the same whether or not the invited email has an account', async () => {
      const known = await signUp(cp.httpUrl, 'known');
      const unknownEmail = `nobody-${hex()}@example.com`;
      const shape = (value: unknown): unknown =>
        value && typeof value === 'object'
          ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, shape(v)]))
          : typeof value;
      const forKnown = await call(
        'MemberService/InviteMember',
        { email: known.email, role: 'ROLE_VIEWER' },
        acme.accessToken,
      );
      const forUnknown = await call(
        'MemberService/InviteMember',
        { email: unknownEmail, role: 'ROLE_VIEWER' },
        acme.accessToken,
      );
      expect(forKnown.status).toBe(200);
      expect(forUnknown.status).toBe(forKnown.status);
      expect(shape(forUnknown.json)).toEqual(shape(forKnown.json));
      const grpc = grpcMembers(acme.accessToken);
      const [viaGrpcKnown, viaGrpcUnknown] = await Promise.all([
        grpc.inviteMember({ email: known.email, role: Role.VIEWER }),
        grpc.inviteMember({ email: unknownEmail, role: Role.VIEWER }),
      ]);
      expect(Object.keys(viaGrpcUnknown.invitation ?? {})).toEqual(Object.keys(viaGrpcKnown.invitation ?? {}));
      expect(viaGrpcUnknown.token).toMatch(/^sbi_/);
      // Who already belongs to the tenant is no secret from those who may invite: they can list members.
      const member = await call(
        'MemberService/InviteMember',
        { email: acme.email, role: 'ROLE_VIEWER' },
        acme.accessToken,
      );
      expect(member.json.code).toBe('already_exists');
    });

    it('refuses a token used twice, presented by someone else, revoked or unknown with one answer, changing nothing', async () => {
      const carol = await signUp(cp.httpUrl, 'carol');
      const mallory = await signUp(cp.httpUrl, 'mallory');
      const forCarol = await invite(acme.accessToken, carol.email, 'ROLE_ADMIN');

      const refusals: { status: number; code: unknown; message: unknown }[] = [];
      const refused = async (invitationToken: string, userToken: string) => {
        const { status, json } = await accept(invitationToken, userToken);
        refusals.push({ status, code: json.code, message: json.message });
      };
      // Someone else holding Carol's token gets nothing, and the token still works for Carol.
      await refused(forCarol.token, mallory.accessToken);
      expect(await tenantsOf(mallory.accessToken)).toEqual([mallory.tenantId]);
      expect(await roleOf(mallory.ownerId)).toBeUndefined();
      expect((await accept(forCarol.token, carol.accessToken)).status).toBe(200);
      // Used once: refused to Carol again and to anyone else.
      await refused(forCarol.token, carol.accessToken);
      await refused(forCarol.token, mallory.accessToken);
      expect(await roleOf(carol.ownerId)).toBe('ROLE_ADMIN');

      const dave = await signUp(cp.httpUrl, 'dave');
      const forDave = await invite(acme.accessToken, dave.email);
      const revoked = await call('MemberService/RevokeInvitation', { invitationId: forDave.id }, acme.accessToken);
      expect(revoked.status).toBe(200);
      expect((revoked.json.invitation as { revokedAt?: string }).revokedAt).toBeDefined();
      await refused(forDave.token, dave.accessToken);
      expect(await tenantsOf(dave.accessToken)).toEqual([dave.tenantId]);

      await refused(`sbi_${randomBytes(32).toString('base64url')}`, dave.accessToken);

      expect(refusals).toHaveLength(5);
      for (const refusal of refusals) expect(refusal).toEqual({ ...refusals[0], status: 404, code: 'not_found' });
      expect(String(refusals[0]?.message)).toContain('invitation');

      const malformed = await accept('sbi_short', dave.accessToken);
      expect(malformed.json.code).toBe('invalid_argument');

      // The tenant sees the attempts in its audit log.
      const audit = await call(
        'AuditService/ListAuditEvents',
        { actionPrefix: 'invitation.accept_refused', pageSize: 100 },
        acme.accessToken,
      );
      const reasons = (audit.json.events as { details?: { reason?: string } }[]).map((e) => e.details?.reason);
      expect(reasons).toEqual(expect.arrayContaining(['sent to another email address', 'already used', 'revoked']));
    });

    it('replaces a pending invitation when the same email is invited again', async () => {
      const email = `again-${hex()}@example.com`;
      const first = await invite(acme.accessToken, email, 'ROLE_VIEWER');
      const second = await invite(acme.accessToken, email.toUpperCase(), 'ROLE_DEVELOPER');
      const listed = (await pendingInvitations()).filter((i) => i.email.toLowerCase() === email);
      expect(listed.map((i) => [i.id, i.role])).toEqual([[second.id, 'ROLE_DEVELOPER']]);
      // The invitee has no account yet: they join through SignUp.
      const viaOld = await call('AuthService/SignUp', {
        email,
        password: 'a-long-enough-password',
        displayName: 'Again',
        invitationToken: first.token,
      });
      expect(viaOld.json.code).toBe('not_found');
      const viaNew = await call('AuthService/SignUp', {
        email,
        password: 'a-long-enough-password',
        displayName: 'Again',
        invitationToken: second.token,
      });
      expect(viaNew.status).toBe(200);
    });

    it('lets a person without an account sign up into the inviting tenant, only with the invited email', async () => {
      const email = `newcomer-${hex()}@example.com`;
      const { token } = await invite(acme.accessToken, email, 'ROLE_VIEWER');
      const password = 'a-long-enough-password';
      const signUpWith = (body: Record<string, string>) =>
        call('AuthService/SignUp', { password, displayName: 'Newcomer', ...body });

      const otherEmail = `impostor-${hex()}@example.com`;
      const impostor = await signUpWith({ email: otherEmail, invitationToken: token });
      expect({ status: impostor.status, code: impostor.json.code }).toEqual({ status: 404, code: 'not_found' });
      // The refused sign-up created no account.
      expect((await call('AuthService/Login', { email: otherEmail, password })).status).toBe(401);
      // A tenant name and an invitation together are ambiguous; neither is not enough.
      expect((await signUpWith({ email, invitationToken: token, tenantName: 'Own' })).json.code).toBe(
        'invalid_argument',
      );
      expect((await signUpWith({ email })).json.code).toBe('invalid_argument');

      const joined = await signUpWith({ email, invitationToken: token });
      expect(joined.status).toBe(200);
      expect(joined.json.tenant).toMatchObject({ id: acme.tenantId });
      const accessToken = (joined.json.tokens as { accessToken: string }).accessToken;
      const me = await call('AuthService/GetMe', {}, accessToken);
      expect(me.json).toMatchObject({ tenant: { id: acme.tenantId }, role: 'ROLE_VIEWER' });
      // Joined, and no tenant of their own was created.
      expect(await tenantsOf(accessToken)).toEqual([acme.tenantId]);
      const again = await signUpWith({ email: `late-${hex()}@example.com`, invitationToken: token });
      expect(again.json.code).toBe('not_found');

      // Someone who already has an account is told to log in, and accepts from there.
      const existing = await signUp(cp.httpUrl, 'existing');
      const forExisting = await invite(acme.accessToken, existing.email, 'ROLE_VIEWER');
      const duplicate = await signUpWith({ email: existing.email, invitationToken: forExisting.token });
      expect(duplicate.json.code).toBe('already_exists');
      expect((await accept(forExisting.token, existing.accessToken)).status).toBe(200);
    });

    it('lets an invitation be accepted only while its inviter may still grant the role', async () => {
      const admin = await addMember(cp.httpUrl, acme, 'ADMIN');
      const frank = await signUp(cp.httpUrl, 'frank');
      const forFrank = await invite(admin.token, frank.email, 'ROLE_ADMIN');
      // Nobody grants more than they have; developers do not invite at all.
      const asOwner = await call('MemberService/InviteMember', { email: frank.email, role: 'ROLE_OWNER' }, admin.token);
      expect(asOwner.json.code).toBe('permission_denied');
      const developer = await addMember(cp.httpUrl, acme, 'DEVELOPER');
      const byDeveloper = await call(
        'MemberService/InviteMember',
        { email: frank.email, role: 'ROLE_VIEWER' },
        developer.token,
      );
      expect(byDeveloper.json.code).toBe('permission_denied');

      await call('MemberService/UpdateMemberRole', { userId: admin.userId, role: 'ROLE_DEVELOPER' }, acme.accessToken);
      const whileDemoted = await accept(forFrank.token, frank.accessToken);
      expect({ status: whileDemoted.status, code: whileDemoted.json.code }).toEqual({
        status: 400,
        code: 'failed_precondition',
      });
      expect(await roleOf(frank.ownerId)).toBeUndefined();
      await call('MemberService/UpdateMemberRole', { userId: admin.userId, role: 'ROLE_ADMIN' }, acme.accessToken);
      expect((await accept(forFrank.token, frank.accessToken)).status).toBe(200);
      expect(await roleOf(frank.ownerId)).toBe('ROLE_ADMIN');

      // An admin cannot cancel what only an owner could grant.
      const forOwner = await invite(acme.accessToken, `owner-${hex()}@example.com`, 'ROLE_OWNER');
      const cancel = await call('MemberService/RevokeInvitation', { invitationId: forOwner.id }, admin.token);
      expect(cancel.json.code).toBe('permission_denied');
      expect((await pendingInvitations()).map((i) => i.id)).toContain(forOwner.id);

      // A member who leaves takes their pending invitations with them.
      const grace = await signUp(cp.httpUrl, 'grace');
      const forGrace = await invite(admin.token, grace.email, 'ROLE_VIEWER');
      await call('MemberService/RemoveMember', { userId: admin.userId }, acme.accessToken);
      expect((await pendingInvitations()).map((i) => i.id)).not.toContain(forGrace.id);
      expect((await accept(forGrace.token, grace.accessToken)).json.code).toBe('not_found');
    });

    it('refuses an invitation whose inviter was demoted to a role that may not manage members, even for a role they still hold', async () => {
      const admin = await addMember(cp.httpUrl, acme, 'ADMIN');
      const heidi = await signUp(cp.httpUrl, 'heidi');
      const forHeidi = await invite(admin.token, heidi.email, 'ROLE_DEVELOPER');
      const newcomer = `ivan-${hex()}@example.com`;
      const forNewcomer = await invite(admin.token, newcomer, 'ROLE_VIEWER');
      const password = 'a-long-enough-password';
      const signUpInvited = () =>
        call('AuthService/SignUp', {
          email: newcomer,
          password,
          displayName: 'Ivan',
          invitationToken: forNewcomer.token,
        });

      for (const demotedTo of ['ROLE_DEVELOPER', 'ROLE_VIEWER']) {
        await call('MemberService/UpdateMemberRole', { userId: admin.userId, role: demotedTo }, acme.accessToken);
        const accepted = await accept(forHeidi.token, heidi.accessToken);
        expect({ status: accepted.status, code: accepted.json.code }).toEqual({
          status: 400,
          code: 'failed_precondition',
        });
        const signedUp = await signUpInvited();
        expect({ status: signedUp.status, code: signedUp.json.code }).toEqual({
          status: 400,
          code: 'failed_precondition',
        });
      }
      // Nothing changed: no member, no account, both invitations still pending.
      expect(await roleOf(heidi.ownerId)).toBeUndefined();
      expect(await tenantsOf(heidi.accessToken)).toEqual([heidi.tenantId]);
      expect((await call('AuthService/Login', { email: newcomer, password })).status).toBe(401);
      expect((await pendingInvitations()).map((i) => i.id)).toEqual(
        expect.arrayContaining([forHeidi.id, forNewcomer.id]),
      );

      // Their standing, not the invitation, was the obstacle.
      await call('MemberService/UpdateMemberRole', { userId: admin.userId, role: 'ROLE_ADMIN' }, acme.accessToken);
      expect((await accept(forHeidi.token, heidi.accessToken)).status).toBe(200);
      expect((await signUpInvited()).status).toBe(200);
    });

    it('lists pending invitations page by page, never with their tokens', async () => {
      const first = await invite(acme.accessToken, `list-a-${hex()}@example.com`);
      const second = await invite(acme.accessToken, `list-b-${hex()}@example.com`);
      const all = await call('MemberService/ListInvitations', { pageSize: 1000 }, acme.accessToken);
      const text = JSON.stringify(all.json);
      expect(text).not.toContain(first.token.slice(4));
      expect(text).not.toContain(second.token.slice(4));
      const ids: string[] = [];
      let pageToken = '';
      do {
        const page = await call('MemberService/ListInvitations', { pageSize: 1, pageToken }, acme.accessToken);
        const invitations = page.json.invitations as { id: string }[];
        expect(invitations.length).toBeLessThanOrEqual(1);
        ids.push(...invitations.map((i) => i.id));
        pageToken = (page.json.nextPageToken as string | undefined) ?? '';
      } while (pageToken);
      expect(ids.sort()).toEqual((all.json.invitations as { id: string }[]).map((i) => i.id).sort());
      expect(ids).toEqual(expect.arrayContaining([first.id, second.id]));
    });
  });

  describe('tenant isolation: another tenant’s invitations are NOT_FOUND', () => {
    it('for RevokeInvitation, and ListInvitations shows only the caller’s tenant', async () => {
      const globex = await signUp(cp.httpUrl, 'globex');
      const theirs = await invite(globex.accessToken, `globex-${hex()}@example.com`);
      const { status, json } = await call(
        'MemberService/RevokeInvitation',
        { invitationId: theirs.id },
        acme.accessToken,
      );
      expect({ status, code: json.code }).toEqual({ status: 404, code: 'not_found' });
      expect((await pendingInvitations(globex.accessToken)).map((i) => i.id)).toEqual([theirs.id]);
      expect((await pendingInvitations()).map((i) => i.id)).not.toContain(theirs.id);
      // An acme admin cannot move people into globex either: the invitation only admits its invitee.
      const admin = await addMember(cp.httpUrl, acme, 'ADMIN');
      expect((await accept(theirs.token, admin.token)).json.code).toBe('not_found');
      expect(await tenantsOf(admin.token)).not.toContain(globex.tenantId);
    });
  });
});

describe('invitations expire (fake clock)', () => {
  const clock = new ManualClock(new Date());
  let cp: TestControlPlane;
  beforeAll(async () => {
    cp = await startControlPlane({ clock, env: { INVITATION_TTL_MS: '60000' } });
  });
  afterAll(async () => {
    await cp?.close();
  });

  it('refuses an invitation past its expiry with the same answer as an unknown one, and stops listing it', async () => {
    const tenant = await signUp(cp.httpUrl, 'expiring');
    const [early, late] = [await signUp(cp.httpUrl, 'early'), await signUp(cp.httpUrl, 'late')];
    const invite = async (email: string) => {
      const { json } = await postJson(
        cp.httpUrl,
        rpc('MemberService/InviteMember'),
        { email, role: 'ROLE_VIEWER' },
        tenant.accessToken,
      );
      return { id: (json.invitation as { id: string }).id, token: json.token as string };
    };
    const accept = (token: string, userToken: string) =>
      postJson(cp.httpUrl, rpc('MemberService/AcceptInvitation'), { token }, userToken);
    const forEarly = await invite(early.email);
    const forLate = await invite(late.email);

    clock.advance(59_000);
    expect((await accept(forEarly.token, early.accessToken)).status).toBe(200);
    clock.advance(2_000);
    const expired = await accept(forLate.token, late.accessToken);
    const unknown = await accept(`sbi_${randomBytes(32).toString('base64url')}`, late.accessToken);
    expect({ status: expired.status, code: expired.json.code }).toEqual({ status: 404, code: 'not_found' });
    expect(expired.json.message).toBe(unknown.json.message);

    const me = await postJson(cp.httpUrl, rpc('AuthService/GetMe'), {}, late.accessToken);
    expect((me.json.memberships as { tenantId: string }[]).map((m) => m.tenantId)).toEqual([late.tenantId]);
    const listed = await postJson(cp.httpUrl, rpc('MemberService/ListInvitations'), {}, tenant.accessToken);
    expect((listed.json.invitations as { id: string }[] | undefined) ?? []).toEqual([]);
  });
});
