import type { TenantPlan, TenantRole } from './identity.types.js';

/** Who is calling, as established by the auth interceptor for one RPC. */
export type Principal =
  | {
      kind: 'user';
      userId: string;
      /** Tenant the credential acts in; null for a platform admin without one. */
      tenantId: string | null;
      /** Current role in that tenant (read from the database, not trusted from the token). */
      role: TenantRole | null;
      plan: TenantPlan;
      platformAdmin: boolean;
      /** The sign-in session (refresh-token family) the access token belongs to. */
      sessionId: string;
      /** When the access token expires; a call that outlives it is ended. */
      expiresAt?: Date;
    }
  | {
      kind: 'api-key';
      apiKeyId: string;
      tenantId: string;
      role: TenantRole;
      plan: TenantPlan;
      /** When the key expires (null: never); a call that outlives it is ended. */
      expiresAt?: Date | null;
      /** The person whose current role caps the key's; a change to them re-checks the key's calls. */
      creatorUserId?: string;
    };

/** Where a request came from, for the audit log and per-IP limits. */
export interface RequestOrigin {
  ip: string;
  userAgent: string;
}

/** The subject that rate limits and audit entries are attributed to. */
export function principalSubject(principal: Principal): string {
  return principal.kind === 'user' ? `user:${principal.userId}` : `key:${principal.apiKeyId}`;
}
