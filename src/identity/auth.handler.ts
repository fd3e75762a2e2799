import { create } from '@bufbuild/protobuf';
import type { HandlerContext, ServiceImpl } from '@connectrpc/connect';
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
import { requirePrincipal } from '../transport/auth.interceptor.js';
import { originKey } from '../transport/context.js';
import { requestEntityManager } from '../transport/interceptors.js';
import type { AuthService } from './auth.service.js';
import { roleToProto, tenantToProto, tokensToProto, userToProto } from './identity-mapping.handler.js';

const origin = (ctx: HandlerContext) => ctx.values.get(originKey);

/** AuthService: protobuf <-> AuthService use cases; every RPC, so a new one fails to compile until served. */
export function createAuthHandler(auth: AuthService): ServiceImpl<typeof AuthServiceDesc> {
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
