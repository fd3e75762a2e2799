/** Tenant-level roles, most powerful first. */
export const TENANT_ROLES = ['OWNER', 'ADMIN', 'DEVELOPER', 'VIEWER'] as const;
/** A role inside one tenant. */
export type TenantRole = (typeof TENANT_ROLES)[number];

/** Whether a user may sign in. */
export type UserStatus = 'ACTIVE' | 'SUSPENDED';

/** Billing plan of a tenant; sets quotas and rate limits. */
export type TenantPlan = 'free' | 'pro' | 'enterprise';
