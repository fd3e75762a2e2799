import type { EntityManager } from '@mikro-orm/postgresql';
import type { AuditService } from '../audit/audit.service.js';
import type { Clock } from '../platform/clock.js';
import { DomainError } from '../platform/errors.js';
import { Membership, User } from './account.entity.js';
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

/** Who belongs to the caller's tenant. Every query is scoped by the caller's tenant. */
export class MemberService {
  constructor(
    private readonly clock: Clock,
    private readonly audit: AuditService,
    private readonly invalidate: (what: { userId: string }) => Promise<void>,
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
    const membership = await this.findMember(em, tenantId, input.userId);
    this.assertCanManage(principal, membership.role);
    this.assertCanGrant(principal, input.role);
    if (membership.role === 'OWNER' && input.role !== 'OWNER')
      await this.assertAnotherOwner(em, tenantId, input.userId);
    const previous = membership.role;
    membership.role = input.role;
    this.audit.record(
      em,
      {
        action: 'member.role_changed',
        tenantId,
        targetType: 'user',
        targetId: input.userId,
        details: { from: previous, to: input.role },
      },
      { principal, origin },
    );
    await em.flush();
    await this.invalidate({ userId: input.userId });
    const user = await em.findOneOrFail(User, { id: input.userId });
    return { user, role: membership.role, joinedAt: membership.createdAt };
  }

  async remove(em: EntityManager, principal: Principal, userId: string, origin: RequestOrigin): Promise<void> {
    const tenantId = requireTenant(principal);
    const membership = await this.findMember(em, tenantId, userId);
    this.assertCanManage(principal, membership.role);
    if (membership.role === 'OWNER') await this.assertAnotherOwner(em, tenantId, userId);
    em.remove(membership);
    this.audit.record(
      em,
      { action: 'member.removed', tenantId, targetType: 'user', targetId: userId },
      { principal, origin },
    );
    await em.flush();
    await this.invalidate({ userId });
  }

  // Not a member of the caller's tenant (or no such user): the same NOT_FOUND.
  private async findMember(em: EntityManager, tenantId: string, userId: string): Promise<Membership> {
    const membership = await em.findOne(Membership, { tenantId, userId });
    if (!membership) throw DomainError.notFound('member', userId);
    return membership;
  }

  private assertCanGrant(principal: Principal, role: TenantRole): void {
    if (!principal.role || !canGrantRole(principal.role, role)) {
      throw new DomainError('PERMISSION_DENIED', `a ${principal.role ?? 'caller'} cannot grant ${role}`);
    }
  }

  private assertCanManage(principal: Principal, current: TenantRole): void {
    if (!principal.role || !canManageMember(principal.role, current)) {
      throw new DomainError('PERMISSION_DENIED', `a ${principal.role ?? 'caller'} cannot change a ${current}`);
    }
  }

  private async assertAnotherOwner(em: EntityManager, tenantId: string, leavingUserId: string): Promise<void> {
    const owners = await em.count(Membership, { tenantId, role: 'OWNER', userId: { $ne: leavingUserId } });
    if (owners === 0) throw new DomainError('FAILED_PRECONDITION', 'a tenant must keep at least one owner');
  }
}
