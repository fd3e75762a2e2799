import type { TenantRole } from './identity.types.js';

/** What a tenant role may do; each RPC needs one of these (see rpc-access.ts). */
export type Permission =
  | 'tenant.read'
  | 'members.read'
  | 'members.manage'
  | 'api_keys.read'
  | 'api_keys.manage'
  | 'audit.read'
  | 'sessions.read'
  | 'sessions.manage'
  | 'messages.read'
  | 'messages.send';

const READ: readonly Permission[] = ['tenant.read', 'members.read', 'api_keys.read', 'sessions.read', 'messages.read'];
/** Running the product: sessions and messages (developers and their API keys do this all day). */
const OPERATE: readonly Permission[] = ['sessions.manage', 'messages.send'];

/** The one table of role -> permissions. VIEWER only reads; nobody below ADMIN manages people or reads the audit log. */
const ROLE_PERMISSIONS: Record<TenantRole, ReadonlySet<Permission>> = {
  OWNER: new Set([...READ, ...OPERATE, 'members.manage', 'api_keys.manage', 'audit.read']),
  ADMIN: new Set([...READ, ...OPERATE, 'members.manage', 'api_keys.manage', 'audit.read']),
  DEVELOPER: new Set([...READ, ...OPERATE, 'api_keys.manage']),
  VIEWER: new Set(READ),
};

export function roleAllows(role: TenantRole, permission: Permission): boolean {
  return ROLE_PERMISSIONS[role].has(permission);
}

const RANK: Record<TenantRole, number> = { OWNER: 4, ADMIN: 3, DEVELOPER: 2, VIEWER: 1 };

/**
 * Whether `actor` may give someone (a member or an API key) `target`: never
 * more than the actor has, and only owners make owners.
 */
export function canGrantRole(actor: TenantRole, target: TenantRole): boolean {
  if (target === 'OWNER') return actor === 'OWNER';
  return RANK[actor] >= RANK[target];
}

/** The less powerful of two roles: what an API key may do given its own role and its creator's. */
export function lesserRole(a: TenantRole, b: TenantRole): TenantRole {
  return RANK[a] <= RANK[b] ? a : b;
}

/** Whether `actor` may change or remove a member who has `current`: admins cannot touch owners. */
export function canManageMember(actor: TenantRole, current: TenantRole): boolean {
  return current === 'OWNER' ? actor === 'OWNER' : RANK[actor] >= RANK['ADMIN'];
}
