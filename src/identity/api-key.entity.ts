import { EntitySchema } from '@mikro-orm/core';
import { Tenant, User } from './account.entity.js';
import type { TenantRole } from './identity.types.js';

/** A tenant's API key. The id is public (it is part of the key); only a SHA-256 of the secret is stored. */
export class ApiKey {
  id!: string;
  tenantId!: string;
  name!: string;
  role!: TenantRole;
  secretHash!: string;
  createdByUserId!: string | null;
  createdAt!: Date;
  expiresAt!: Date | null;
  revokedAt!: Date | null;
  lastUsedAt!: Date | null;
}

const timestamptz = { type: 'datetime', columnType: 'timestamptz' } as const;

export const ApiKeySchema = new EntitySchema<ApiKey>({
  class: ApiKey,
  tableName: 'api_key',
  properties: {
    id: { type: 'text', primary: true },
    tenantId: { kind: 'm:1', entity: () => Tenant, mapToPk: true, deleteRule: 'cascade', fieldName: 'tenant_id' },
    name: { type: 'text' },
    role: { type: 'text' },
    secretHash: { type: 'text' },
    createdByUserId: {
      kind: 'm:1',
      entity: () => User,
      mapToPk: true,
      deleteRule: 'set null',
      fieldName: 'created_by_user_id',
      nullable: true,
    },
    createdAt: { ...timestamptz },
    expiresAt: { ...timestamptz, nullable: true },
    revokedAt: { ...timestamptz, nullable: true },
    lastUsedAt: { ...timestamptz, nullable: true },
  },
  indexes: [{ name: 'api_key_tenant_idx', properties: ['tenantId', 'createdAt'] }],
});
