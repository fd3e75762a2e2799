import { MembershipSchema, TenantSchema, UserSchema } from './account.entity.js';
import { ApiKeySchema } from './api-key.entity.js';
import { AuthSessionSchema, RefreshTokenSchema } from './auth-session.entity.js';
import { InvitationSchema } from './invitation.entity.js';
import { SigningKeySchema } from './signing-key.entity.js';

/** The identity capability's tables, for the ORM list assembled in src/entities.ts. */
export const identityEntities = [
  TenantSchema,
  UserSchema,
  MembershipSchema,
  InvitationSchema,
  AuthSessionSchema,
  RefreshTokenSchema,
  ApiKeySchema,
  SigningKeySchema,
];
