import type { EntityManager } from '@mikro-orm/postgresql';
import type { AuditService } from '../audit/audit.service.js';
import type { Clock } from '../platform/clock.js';
import { DomainError } from '../platform/errors.js';
import { LockMode } from '@mikro-orm/core';
import { assertPerson } from './access-control.js';
import { Membership, Tenant, User } from './account.entity.js';
import { requireTenant } from './api-key.service.js';
import type { TenantRole } from './identity.types.js';
import type { Principal, RequestOrigin } from './principal.js';
import { canGrantRole, canManageMember } from './roles.js';
import { normaliseEmail } from './secrets.js';

/** A member as listed: the membership joined with its user. */
export interface MemberView {
  user: User;
  role: TenantRole;
  joinedAt: Date;
}

/**
 * Who belongs to the caller's tenant. Every query is scoped by the caller's
 * tenant; every change is made by a person, never an API key.
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

  async add(
    em: EntityManager,
    principal: Principal,
    input: { email: string; role: TenantRole },
    origin: RequestOrigin,
  ): Promise<MemberView> {
    const tenantId = requireTenant(principal);
    assertPerson(principal);
    this.assertCanGrant(principal, input.role);
    const user = await em.findOne(User, { emailNormalized: normaliseEmail(input.email) });
    if (!user) throw new DomainError('NOT_FOUND', 'no user with this email; they must sign up first');
    if (await em.findOne(Membership, { tenantId, userId: user.id })) {
      throw new DomainError('ALREADY_EXISTS', 'this user is already a member');
    }
    const membership = em.create(Membership, {
      tenantId,
      userId: user.id,
      role: input.role,
      createdAt: this.clock.now(),
    });
    this.audit.record(
      em,
      { action: 'member.added', tenantId, targetType: 'user', targetId: user.id, details: { role: input.role } },
      { principal, origin },
    );
    await em.flush();
    return { user, role: membership.role, joinedAt: membership.createdAt };
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
      await this.lockTenant(tx, tenantId);
      const found = await this.findMember(tx, tenantId, input.userId);
      this.assertCanManage(principal, found.role);
      this.assertCanGrant(principal, input.role);
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
      await this.lockTenant(tx, tenantId);
      const membership = await this.findMember(tx, tenantId, userId);
      this.assertCanManage(principal, membership.role);
      if (membership.role === 'OWNER') await this.assertAnotherOwner(tx, tenantId, userId);
      tx.remove(membership);
      this.audit.record(
        tx,
        { action: 'member.removed', tenantId, targetType: 'user', targetId: userId },
        { principal, origin },
      );
      await tx.flush();
      // Their API keys in this tenant go with them.
      await this.revokeKeysOf(tx, userId, tenantId);
    });
    await this.invalidate({ userId });
  }

  // Serialises membership changes per tenant, so two owners demoting
  // themselves at once cannot leave the tenant without one.
  private async lockTenant(em: EntityManager, tenantId: string): Promise<void> {
    await em.findOne(Tenant, { id: tenantId }, { lockMode: LockMode.PESSIMISTIC_WRITE });
  }

  // Not a member of the caller's tenant (or no such user): the same NOT_FOUND.
  private async findMember(em: EntityManager, tenantId: string, userId: string): Promise<Membership> {
    const membership = await em.findOne(Membership, { tenantId, userId });
    if (!membership) throw DomainError.notFound('member', userId);
    return membership;
  }

  private assertCanGrant(principal: Principal, role: TenantRole): void {
    if (!principal.role || !canGrantRole(principal.role, role)) {
      throw new DomainError('PERMISSION_DENIED', `role ${principal.role ?? 'none'} cannot grant ${role}`);
    }
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
