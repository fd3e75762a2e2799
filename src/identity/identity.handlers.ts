import { create } from '@bufbuild/protobuf';
import { timestampDate } from '@bufbuild/protobuf/wkt';
import type { HandlerContext, ServiceImpl } from '@connectrpc/connect';
import {
  type ApiKeyService as ApiKeyServiceDesc,
  CreateApiKeyResponseSchema,
  ListApiKeysResponseSchema,
  RevokeApiKeyResponseSchema,
} from '../../gen/switchboard/v1/api_key_pb.js';
import {
  type AuthService as AuthServiceDesc,
  ChangePasswordResponseSchema,
  GetMeResponseSchema,
  LoginResponseSchema,
  LogoutResponseSchema,
  RefreshResponseSchema,
  SignUpResponseSchema,
} from '../../gen/switchboard/v1/auth_pb.js';
import { MembershipSchema } from '../../gen/switchboard/v1/identity_pb.js';
import {
  AcceptInvitationResponseSchema,
  InviteMemberResponseSchema,
  ListInvitationsResponseSchema,
  ListMembersResponseSchema,
  type MemberService as MemberServiceDesc,
  RemoveMemberResponseSchema,
  RevokeInvitationResponseSchema,
  UpdateMemberRoleResponseSchema,
} from '../../gen/switchboard/v1/member_pb.js';
import { decodePageToken, encodePageToken, normalisePageSize } from '../fleet/page-token.js';
import { requirePrincipal } from '../transport/auth.interceptor.js';
import { originKey } from '../transport/context.js';
import { requestEntityManager } from '../transport/interceptors.js';
import type { ApiKeyService } from './api-key.service.js';
import type { AuthService } from './auth.service.js';
import {
  apiKeyToProto,
  invitationToProto,
  memberToProto,
  roleToProto,
  tenantRoleFromProto,
  tenantToProto,
  tokensToProto,
  userToProto,
} from './identity.mapping.js';
import type { InvitationService } from './invitation.service.js';
import type { MemberService } from './member.service.js';

const origin = (ctx: HandlerContext) => ctx.values.get(originKey);

/** AuthService: protobuf <-> AuthService use cases. */
export function createAuthHandler(auth: AuthService): Partial<ServiceImpl<typeof AuthServiceDesc>> {
  return {
    async signUp(req, ctx) {
      const result = await auth.signUp(requestEntityManager(ctx), req, origin(ctx));
      return create(SignUpResponseSchema, {
        user: userToProto(result.user),
        tenant: tenantToProto(result.tenant),
        tokens: tokensToProto(result.tokens),
      });
    },
    async login(req, ctx) {
      const tokens = await auth.login(requestEntityManager(ctx), req, origin(ctx));
      return create(LoginResponseSchema, { tokens: tokensToProto(tokens) });
    },
    async refresh(req, ctx) {
      const tokens = await auth.refresh(requestEntityManager(ctx), req.refreshToken, origin(ctx));
      return create(RefreshResponseSchema, { tokens: tokensToProto(tokens) });
    },
    async logout(_req, ctx) {
      await auth.logout(requestEntityManager(ctx), requirePrincipal(ctx), origin(ctx));
      return create(LogoutResponseSchema);
    },
    async getMe(_req, ctx) {
      const me = await auth.me(requestEntityManager(ctx), requirePrincipal(ctx));
      return create(GetMeResponseSchema, {
        user: me.user ? userToProto(me.user) : undefined,
        tenant: me.tenant ? tenantToProto(me.tenant) : undefined,
        role: roleToProto(me.role),
        memberships: me.memberships.map((m) =>
          create(MembershipSchema, { tenantId: m.tenant.id, tenantName: m.tenant.name, role: roleToProto(m.role) }),
        ),
        apiKeyId: me.apiKeyId ?? '',
      });
    },
    async changePassword(req, ctx) {
      await auth.changePassword(requestEntityManager(ctx), requirePrincipal(ctx), req, origin(ctx));
      return create(ChangePasswordResponseSchema);
    },
  };
}

/** ApiKeyService: protobuf <-> ApiKeyService use cases. */
export function createApiKeyHandler(apiKeys: ApiKeyService): Partial<ServiceImpl<typeof ApiKeyServiceDesc>> {
  return {
    async createApiKey(req, ctx) {
      const result = await apiKeys.create(
        requestEntityManager(ctx),
        requirePrincipal(ctx),
        {
          name: req.name,
          role: tenantRoleFromProto(req.role),
          expiresAt: req.expiresAt ? timestampDate(req.expiresAt) : null,
        },
        origin(ctx),
      );
      return create(CreateApiKeyResponseSchema, { apiKey: apiKeyToProto(result.apiKey), secret: result.secret });
    },
    async listApiKeys(req, ctx) {
      const pageSize = normalisePageSize(req.pageSize, { default: 100, max: 1000 });
      const keys = await apiKeys.list(requestEntityManager(ctx), requirePrincipal(ctx), {
        pageSize: pageSize + 1,
        afterId: decodePageToken(req.pageToken),
        includeInactive: req.includeInactive,
      });
      const page = keys.slice(0, pageSize);
      const last = page.at(-1);
      return create(ListApiKeysResponseSchema, {
        apiKeys: page.map(apiKeyToProto),
        nextPageToken: keys.length > pageSize && last ? encodePageToken(last.id) : '',
      });
    },
    async revokeApiKey(req, ctx) {
      const key = await apiKeys.revoke(requestEntityManager(ctx), requirePrincipal(ctx), req.apiKeyId, origin(ctx));
      return create(RevokeApiKeyResponseSchema, { apiKey: apiKeyToProto(key) });
    },
  };
}

/** MemberService: protobuf <-> MemberService and InvitationService use cases. */
export function createMemberHandler(
  members: MemberService,
  invitations: InvitationService,
): Partial<ServiceImpl<typeof MemberServiceDesc>> {
  return {
    async listMembers(_req, ctx) {
      const list = await members.list(requestEntityManager(ctx), requirePrincipal(ctx));
      return create(ListMembersResponseSchema, { members: list.map(memberToProto) });
    },
    async inviteMember(req, ctx) {
      const result = await invitations.invite(
        requestEntityManager(ctx),
        requirePrincipal(ctx),
        { email: req.email, role: tenantRoleFromProto(req.role) },
        origin(ctx),
      );
      return create(InviteMemberResponseSchema, {
        invitation: invitationToProto(result.invitation),
        token: result.token,
      });
    },
    async listInvitations(req, ctx) {
      const pageSize = normalisePageSize(req.pageSize, { default: 100, max: 1000 });
      const found = await invitations.list(requestEntityManager(ctx), requirePrincipal(ctx), {
        pageSize: pageSize + 1,
        afterId: decodePageToken(req.pageToken),
      });
      const page = found.slice(0, pageSize);
      const last = page.at(-1);
      return create(ListInvitationsResponseSchema, {
        invitations: page.map(invitationToProto),
        nextPageToken: found.length > pageSize && last ? encodePageToken(last.id) : '',
      });
    },
    async revokeInvitation(req, ctx) {
      const invitation = await invitations.revoke(
        requestEntityManager(ctx),
        requirePrincipal(ctx),
        req.invitationId,
        origin(ctx),
      );
      return create(RevokeInvitationResponseSchema, { invitation: invitationToProto(invitation) });
    },
    async acceptInvitation(req, ctx) {
      const joined = await invitations.accept(requestEntityManager(ctx), requirePrincipal(ctx), req.token, origin(ctx));
      return create(AcceptInvitationResponseSchema, {
        membership: create(MembershipSchema, {
          tenantId: joined.tenant.id,
          tenantName: joined.tenant.name,
          role: roleToProto(joined.role),
        }),
      });
    },
    async updateMemberRole(req, ctx) {
      const member = await members.updateRole(
        requestEntityManager(ctx),
        requirePrincipal(ctx),
        { userId: req.userId, role: tenantRoleFromProto(req.role) },
        origin(ctx),
      );
      return create(UpdateMemberRoleResponseSchema, { member: memberToProto(member) });
    },
    async removeMember(req, ctx) {
      await members.remove(requestEntityManager(ctx), requirePrincipal(ctx), req.userId, origin(ctx));
      return create(RemoveMemberResponseSchema);
    },
  };
}
