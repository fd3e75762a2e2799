import type { EntityManager } from '@mikro-orm/postgresql';
import type { AuditService } from '../audit/audit.service.js';
import type { Clock } from '../../lib/clock.js';
import { DomainError } from '../../lib/errors.js';
import { LockMode } from '@mikro-orm/core';
import { assertPerson } from './access-control.js';
import { Membership, Tenant, User } from './account.entity.js';
import { requireTenant } from './api-key.service.js';
import type { TenantRole } from './identity.types.js';
import { Invitation } from './invitation.entity.js';
import type { Principal, RequestOrigin } from './principal.js';
import { canGrantRole, canManageMember } from './roles.js';

/** A member as listed: the membership joined with its user. */
export interface MemberView {
  user: User;
  role: TenantRole;
  joinedAt: Date;
}

/**
 * Who belongs to the caller's tenant (people join by invitation, see
 * InvitationService). Every query is scoped by the caller's tenant; every
 * change is made by a person, never an API key.
 */
export class MemberService {
  constructor(
    private readonly clock: Clock,
    private readonly audit: AuditService,
    private readonly invalidate: (what: { userId: string }) => Promise<void>,
    private readonly revokeKeysOf: (em: EntityManager, userId: string, tenantId: string) => Promise<void>,
  ) {}

  async list(em: EntityManager, principal: Principal): Promise<MemberView[]> {
    const tenantId = requireTenant(principal);
    const memberships = await em.find(Membership, { tenantId }, { orderBy: { createdAt: 'asc' } });
    const users = await em.find(User, { id: { $in: memberships.map((m) => m.userId) } });
    const byId = new Map(users.map((u) => [u.id, u]));
    return memberships.flatMap((m) => {
      const user = byId.get(m.userId);
      return user ? [{ user, role: m.role, joinedAt: m.createdAt }] : [];
    });
  }

  async updateRole(
    em: EntityManager,
    principal: Principal,
    input: { userId: string; role: TenantRole },
    origin: RequestOrigin,
  ): Promise<MemberView> {
    const tenantId = requireTenant(principal);
    assertPerson(principal);
    const membership = await em.transactional(async (tx) => {
      await lockTenant(tx, tenantId);
      const found = await this.findMember(tx, tenantId, input.userId);
      this.assertCanManage(principal, found.role);
      assertCanGrant(principal, input.role);
      if (found.role === 'OWNER' && input.role !== 'OWNER') await this.assertAnotherOwner(tx, tenantId, input.userId);
      const previous = found.role;
      found.role = input.role;
      this.audit.record(
        tx,
        {
          action: 'member.role_changed',
          tenantId,
          targetType: 'user',
          targetId: input.userId,
          details: { from: previous, to: input.role },
        },
        { principal, origin },
      );
      return found;
    });
    await this.invalidate({ userId: input.userId });
    const user = await em.findOneOrFail(User, { id: input.userId });
    return { user, role: membership.role, joinedAt: membership.createdAt };
  }

  async remove(em: EntityManager, principal: Principal, userId: string, origin: RequestOrigin): Promise<void> {
    const tenantId = requireTenant(principal);
    assertPerson(principal);
    await em.transactional(async (tx) => {
      await lockTenant(tx, tenantId);
      const membership = await this.findMember(tx, tenantId, userId);
      this.assertCanManage(principal, membership.role);
      if (membership.role === 'OWNER') await this.assertAnotherOwner(tx, tenantId, userId);
      tx.remove(membership);
      // Their pending invitations go too: nobody joins on the word of someone who left.
      const invitationsRevoked = await tx.nativeUpdate(
        Invitation,
        { tenantId, invitedByUserId: userId, acceptedAt: null, revokedAt: null },
        { revokedAt: this.clock.now() },
      );
      this.audit.record(
        tx,
        {
          action: 'member.removed',
          tenantId,
          targetType: 'user',
          targetId: userId,
          details: { invitationsRevoked: String(invitationsRevoked) },
        },
        { principal, origin },
      );
      await tx.flush();
      // Their API keys in this tenant go with them.
      await this.revokeKeysOf(tx, userId, tenantId);
    });
    await this.invalidate({ userId });
  }

  // Not a member of the caller's tenant (or no such user): the same NOT_FOUND.
  private async findMember(em: EntityManager, tenantId: string, userId: string): Promise<Membership> {
    const membership = await em.findOne(Membership, { tenantId, userId });
    if (!membership) throw DomainError.notFound('member', userId);
    return membership;
  }

  private assertCanManage(principal: Principal, current: TenantRole): void {
    if (!principal.role || !canManageMember(principal.role, current)) {
      throw new DomainError(
        'PERMISSION_DENIED',
        `role ${principal.role ?? 'none'} cannot change a member with role ${current}`,
      );
    }
  }

  private async assertAnotherOwner(em: EntityManager, tenantId: string, leavingUserId: string): Promise<void> {
    const owners = await em.count(Membership, { tenantId, role: 'OWNER', userId: { $ne: leavingUserId } });
    if (owners === 0) throw new DomainError('FAILED_PRECONDITION', 'a tenant must keep at least one owner');
  }
}

/**
 * Serialises membership changes per tenant (role changes, removals,
 * invitations and their acceptance), so two owners demoting themselves at
 * once cannot leave the tenant without one. Returns the tenant.
 */
export async function lockTenant(em: EntityManager, tenantId: string): Promise<Tenant | null> {
  return em.findOne(Tenant, { id: tenantId }, { lockMode: LockMode.PESSIMISTIC_WRITE });
}

/** Refuses to give a member or an invitee more than the caller has (only owners make owners). */
export function assertCanGrant(principal: Principal, role: TenantRole): void {
  if (!principal.role || !canGrantRole(principal.role, role)) {
    throw new DomainError('PERMISSION_DENIED', `role ${principal.role ?? 'none'} cannot grant ${role}`);
  }
}
