import { DomainError } from '../../lib/errors.js';
import type { Principal } from './principal.js';
import { roleAllows } from './roles.js';
import type { RpcAccess } from './rpc-access.js';

/** Decides whether `principal` may call an RPC with `access`; throws the refusal. Pure. */
export function authorize(access: RpcAccess | undefined, principal: Principal | undefined): void {
  if (!access) throw new DomainError('PERMISSION_DENIED', 'this RPC is not open to anyone');
  switch (access.kind) {
    case 'public':
    case 'worker':
      return;
    case 'signed-in':
    case 'user':
    case 'tenant':
    case 'tenant-person':
    case 'tenant-or-platform':
    case 'platform':
      break;
  }
  if (!principal)
    throw new DomainError('UNAUTHENTICATED', 'credentials required: authorization: Bearer <token or API key>');
  switch (access.kind) {
    case 'signed-in':
      return;
    case 'user':
      assertPerson(principal);
      return;
    case 'platform':
      if (principal.kind !== 'user' || !principal.platformAdmin) {
        throw new DomainError('PERMISSION_DENIED', 'platform admins only');
      }
      return;
    case 'tenant-or-platform':
      if (principal.kind === 'user' && principal.platformAdmin) return;
      assertTenantPermission(principal, access.permission);
      return;
    case 'tenant':
      assertTenantPermission(principal, access.permission);
      return;
    case 'tenant-person':
      assertPerson(principal);
      assertTenantPermission(principal, access.permission);
      return;
  }
}

/** Refuses API keys where a person must act (also checked by services, in case the table is ever loosened). */
export function assertPerson(principal: Principal): asserts principal is Extract<Principal, { kind: 'user' }> {
  if (principal.kind !== 'user') {
    throw new DomainError('PERMISSION_DENIED', 'only a signed-in person can do this, not an API key');
  }
}

function assertTenantPermission(principal: Principal, permission: Parameters<typeof roleAllows>[1]): void {
  if (!principal.tenantId || !principal.role) {
    throw new DomainError('PERMISSION_DENIED', 'this credential does not act in a tenant');
  }
  if (!roleAllows(principal.role, permission)) {
    throw new DomainError('PERMISSION_DENIED', `role ${principal.role} lacks permission ${permission}`);
  }
}
