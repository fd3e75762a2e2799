import { EntitySchema } from '@mikro-orm/core';
import { Tenant, User } from './account.entity.js';

/**
 * One sign-in: the family of refresh tokens rotated from one login. Access
 * tokens carry its id (`sid`), so revoking it ends them too.
 */
export class AuthSession {
  id!: string;
  userId!: string;
  tenantId!: string | null;
  createdAt!: Date;
  revokedAt!: Date | null;
  revokedReason!: string | null;
  ip!: string;
  userAgent!: string;
}

/** A single-use refresh token; only its SHA-256 is stored. */
export class RefreshToken {
  id!: string;
  tokenHash!: string;
  sessionId!: string;
  expiresAt!: Date;
  createdAt!: Date;
  /** Set when exchanged; a second exchange is reuse (theft) and revokes the session. */
  usedAt!: Date | null;
}

const timestamptz = { type: 'datetime', columnType: 'timestamptz' } as const;

export const AuthSessionSchema = new EntitySchema<AuthSession>({
  class: AuthSession,
  tableName: 'auth_session',
  properties: {
    id: { type: 'uuid', primary: true },
    userId: { kind: 'm:1', entity: () => User, mapToPk: true, deleteRule: 'cascade', fieldName: 'user_id' },
    tenantId: {
      kind: 'm:1',
      entity: () => Tenant,
      mapToPk: true,
      deleteRule: 'cascade',
      fieldName: 'tenant_id',
      nullable: true,
    },
    createdAt: { ...timestamptz },
    revokedAt: { ...timestamptz, nullable: true },
    revokedReason: { type: 'text', nullable: true },
    ip: { type: 'text' },
    userAgent: { type: 'text' },
  },
  indexes: [{ name: 'auth_session_user_idx', properties: ['userId'] }],
});

export const RefreshTokenSchema = new EntitySchema<RefreshToken>({
  class: RefreshToken,
  tableName: 'refresh_token',
  properties: {
    id: { type: 'uuid', primary: true },
    tokenHash: { type: 'text', unique: 'refresh_token_hash_unique' },
    sessionId: {
      kind: 'm:1',
      entity: () => AuthSession,
      mapToPk: true,
      deleteRule: 'cascade',
      fieldName: 'session_id',
    },
    expiresAt: { ...timestamptz },
    createdAt: { ...timestamptz },
    usedAt: { ...timestamptz, nullable: true },
  },
  indexes: [{ name: 'refresh_token_session_idx', properties: ['sessionId'] }],
});
