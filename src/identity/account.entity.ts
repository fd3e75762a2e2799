import { EntitySchema } from '@mikro-orm/core';
import type { TenantPlan, TenantRole, UserStatus } from './identity.types.js';

/** An organisation: the unit of ownership and isolation. */
export class Tenant {
  id!: string;
  name!: string;
  plan!: TenantPlan;
  createdAt!: Date;
}

/** A person who signs in. `user` is reserved in SQL, hence the table name. */
export class User {
  id!: string;
  email!: string;
  /** Lower-cased email: uniqueness and look-ups ignore case. */
  emailNormalized!: string;
  displayName!: string;
  passwordHash!: string;
  status!: UserStatus;
  platformAdmin!: boolean;
  createdAt!: Date;
  passwordChangedAt!: Date;
}

/** A user's role in a tenant. */
export class Membership {
  tenantId!: string;
  userId!: string;
  role!: TenantRole;
  createdAt!: Date;
}

const timestamptz = { type: 'datetime', columnType: 'timestamptz' } as const;

export const TenantSchema = new EntitySchema<Tenant>({
  class: Tenant,
  tableName: 'tenant',
  properties: {
    id: { type: 'uuid', primary: true },
    name: { type: 'text' },
    plan: { type: 'text' },
    createdAt: { ...timestamptz },
  },
});

export const UserSchema = new EntitySchema<User>({
  class: User,
  tableName: 'app_user',
  properties: {
    id: { type: 'uuid', primary: true },
    email: { type: 'text' },
    emailNormalized: { type: 'text', unique: 'app_user_email_normalized_unique' },
    displayName: { type: 'text' },
    passwordHash: { type: 'text', lazy: true },
    status: { type: 'text' },
    platformAdmin: { type: 'boolean' },
    createdAt: { ...timestamptz },
    passwordChangedAt: { ...timestamptz },
  },
});

export const MembershipSchema = new EntitySchema<Membership>({
  class: Membership,
  tableName: 'membership',
  properties: {
    tenantId: {
      kind: 'm:1',
      entity: () => Tenant,
      primary: true,
      mapToPk: true,
      deleteRule: 'cascade',
      fieldName: 'tenant_id',
    },
    userId: {
      kind: 'm:1',
      entity: () => User,
      primary: true,
      mapToPk: true,
      deleteRule: 'cascade',
      fieldName: 'user_id',
    },
    role: { type: 'text' },
    createdAt: { ...timestamptz },
  },
  indexes: [{ name: 'membership_user_idx', properties: ['userId'] }],
});
