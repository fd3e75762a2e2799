import { create } from '@bufbuild/protobuf';
import type { HandlerContext, ServiceImpl } from '@connectrpc/connect';
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
import { invitationToProto, memberToProto, roleToProto, tenantRoleFromProto } from './identity-mapping.handler.js';
import type { InvitationService } from './invitation.service.js';
import type { MemberService } from './member.service.js';

const origin = (ctx: HandlerContext) => ctx.values.get(originKey);

/**
 * MemberService: protobuf <-> MemberService and InvitationService use cases
 * (invitations are how members join); every RPC, so a new one fails to
 * compile until served.
 */
export function createMemberHandler(
  members: MemberService,
  invitations: InvitationService,
): ServiceImpl<typeof MemberServiceDesc> {
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
