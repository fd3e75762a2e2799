import { EntitySchema } from '@mikro-orm/core';
import { Tenant, User } from './account.entity.js';
import type { TenantRole } from './identity.types.js';

/**
 * An offer to join a tenant with a role, which only the invited person can
 * accept, once, before it expires. Only a SHA-256 of its token is stored.
 */
export class Invitation {
  id!: string;
  tenantId!: string;
  /** As the inviter typed it, for display. */
  email!: string;
  /** Lower-cased: the accepting user's email must match it. */
  emailNormalized!: string;
  role!: TenantRole;
  tokenHash!: string;
  /** Null once the inviter's account is deleted; such an invitation can no longer be accepted. */
  invitedByUserId!: string | null;
  createdAt!: Date;
  expiresAt!: Date;
  acceptedAt!: Date | null;
  acceptedByUserId!: string | null;
  revokedAt!: Date | null;
}

const timestamptz = { type: 'datetime', columnType: 'timestamptz' } as const;
const user = (fieldName: string) =>
  ({ kind: 'm:1', entity: () => User, mapToPk: true, deleteRule: 'set null', fieldName, nullable: true }) as const;

export const InvitationSchema = new EntitySchema<Invitation>({
  class: Invitation,
  tableName: 'invitation',
  properties: {
    id: { type: 'uuid', primary: true },
    tenantId: { kind: 'm:1', entity: () => Tenant, mapToPk: true, deleteRule: 'cascade', fieldName: 'tenant_id' },
    email: { type: 'text' },
    emailNormalized: { type: 'text' },
    role: { type: 'text' },
    tokenHash: { type: 'text', unique: 'invitation_token_hash_unique' },
    invitedByUserId: user('invited_by_user_id'),
    createdAt: { ...timestamptz },
    expiresAt: { ...timestamptz },
    acceptedAt: { ...timestamptz, nullable: true },
    acceptedByUserId: user('accepted_by_user_id'),
    revokedAt: { ...timestamptz, nullable: true },
  },
  indexes: [{ name: 'invitation_tenant_email_idx', properties: ['tenantId', 'emailNormalized'] }],
});
