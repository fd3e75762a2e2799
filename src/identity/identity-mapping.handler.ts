import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import {
  type ApiKey as ApiKeyMessage,
  ApiKeySchema as ApiKeyMessageSchema,
} from '../../gen/switchboard/v1/api_key_pb.js';
import { type Tokens, TokensSchema } from '../../gen/switchboard/v1/auth_pb.js';
import {
  Role,
  type Tenant as TenantMessage,
  TenantSchema as TenantMessageSchema,
  type User as UserMessage,
  UserSchema as UserMessageSchema,
  UserStatus as UserStatusMessage,
} from '../../gen/switchboard/v1/identity_pb.js';
import {
  type Invitation as InvitationMessage,
  InvitationSchema as InvitationMessageSchema,
  type Member,
  MemberSchema,
} from '../../gen/switchboard/v1/member_pb.js';
import { DomainError } from '../../lib/errors.js';
import type { Tenant, User } from './account.entity.js';
import type { ApiKey } from './api-key.entity.js';
import type { IssuedTokens } from './auth.service.js';
import type { Invitation } from './invitation.entity.js';
import type { TenantRole, UserStatus } from './identity.types.js';
import type { MemberView } from './member.service.js';

/** Protobuf <-> domain mapping for identity types; used only by handlers. */
export function roleToProto(role: TenantRole | null): Role {
  switch (role) {
    case 'OWNER':
      return Role.OWNER;
    case 'ADMIN':
      return Role.ADMIN;
    case 'DEVELOPER':
      return Role.DEVELOPER;
    case 'VIEWER':
      return Role.VIEWER;
    case null:
      return Role.UNSPECIFIED;
  }
}

export function tenantRoleFromProto(role: Role, field = 'role'): TenantRole {
  switch (role) {
    case Role.OWNER:
      return 'OWNER';
    case Role.ADMIN:
      return 'ADMIN';
    case Role.DEVELOPER:
      return 'DEVELOPER';
    case Role.VIEWER:
      return 'VIEWER';
    case Role.UNSPECIFIED:
    case Role.PLATFORM_ADMIN:
      throw DomainError.invalidArgument(field, 'must be a tenant role: OWNER, ADMIN, DEVELOPER or VIEWER');
    default:
      throw DomainError.invalidArgument(field, `unknown role ${String(role)}`);
  }
}

export function userStatusFromProto(status: UserStatusMessage): UserStatus {
  switch (status) {
    case UserStatusMessage.ACTIVE:
      return 'ACTIVE';
    case UserStatusMessage.SUSPENDED:
      return 'SUSPENDED';
    case UserStatusMessage.UNSPECIFIED:
      throw DomainError.invalidArgument('status', 'must be ACTIVE or SUSPENDED');
    default:
      throw DomainError.invalidArgument('status', `unknown status ${String(status)}`);
  }
}

const ts = (date: Date | null | undefined) => (date ? timestampFromDate(date) : undefined);

export function userToProto(user: User): UserMessage {
  return create(UserMessageSchema, {
    id: user.id,
    email: user.email,
    displayName: user.displayName,
    status: user.status === 'ACTIVE' ? UserStatusMessage.ACTIVE : UserStatusMessage.SUSPENDED,
    createdAt: ts(user.createdAt),
    platformAdmin: user.platformAdmin,
  });
}

export function tenantToProto(tenant: Tenant): TenantMessage {
  return create(TenantMessageSchema, {
    id: tenant.id,
    name: tenant.name,
    plan: tenant.plan,
    createdAt: ts(tenant.createdAt),
  });
}

export function tokensToProto(tokens: IssuedTokens): Tokens {
  return create(TokensSchema, {
    accessToken: tokens.accessToken,
    accessTokenExpiresAt: ts(tokens.accessTokenExpiresAt),
    refreshToken: tokens.refreshToken,
    refreshTokenExpiresAt: ts(tokens.refreshTokenExpiresAt),
  });
}

export function apiKeyToProto(key: ApiKey): ApiKeyMessage {
  return create(ApiKeyMessageSchema, {
    id: key.id,
    name: key.name,
    role: roleToProto(key.role),
    createdAt: ts(key.createdAt),
    expiresAt: ts(key.expiresAt),
    lastUsedAt: ts(key.lastUsedAt),
    revokedAt: ts(key.revokedAt),
    createdByUserId: key.createdByUserId ?? '',
    prefix: `sb_live_${key.id}`,
  });
}

export function memberToProto(member: MemberView): Member {
  return create(MemberSchema, {
    userId: member.user.id,
    email: member.user.email,
    displayName: member.user.displayName,
    role: roleToProto(member.role),
    joinedAt: ts(member.joinedAt),
  });
}

/** Never carries the token: it exists only in InviteMember's answer. */
export function invitationToProto(invitation: Invitation): InvitationMessage {
  return create(InvitationMessageSchema, {
    id: invitation.id,
    email: invitation.email,
    role: roleToProto(invitation.role),
    invitedByUserId: invitation.invitedByUserId ?? '',
    createdAt: ts(invitation.createdAt),
    expiresAt: ts(invitation.expiresAt),
    revokedAt: ts(invitation.revokedAt),
  });
}
