import { randomUUID } from 'node:crypto';
import { LockMode } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import type { AuditService } from '../audit/audit.service.js';
import type { Clock } from '../../lib/clock.js';
import { DomainError, type DomainErrorCode } from '../../lib/errors.js';
import { assertPerson } from './access-control.js';
import { Membership, type Tenant, User } from './account.entity.js';
import { requireTenant } from './api-key.service.js';
import type { TenantRole } from './identity.types.js';
import { Invitation } from './invitation.entity.js';
import { assertCanGrant, lockTenant } from './member.service.js';
import type { Principal, RequestOrigin } from './principal.js';
import { canGrantRole, roleAllows } from './roles.js';
import { normaliseEmail, randomSecret, sha256Hex } from './secrets.js';

/** Greppable by secret scanners, like `sb_live_` keys and `sbj_` join tokens. */
const TOKEN_PREFIX = 'sbi_';

/** Who acts on an invitation, for the audit log: a signed-in principal, or a user signing up. */
export interface InvitationActor {
  principal?: Principal;
  userId?: string | null;
  origin: RequestOrigin;
}

/** The tenant a person joined by accepting an invitation, and their role in it. */
export interface Joined {
  tenant: Tenant;
  role: TenantRole;
}

/**
 * Why an invitation cannot be used. Unknown, expired, revoked, used and
 * "sent to someone else" are one answer, so a token reveals nothing about
 * itself to a person it was not meant for; the reason goes to the audit log.
 */
export class InvitationRefused extends DomainError {
  constructor(
    readonly reason: string,
    readonly invitation: Invitation | null,
    code: DomainErrorCode = 'NOT_FOUND',
    message = 'this invitation is invalid, expired, revoked or already used, or it was sent to another email address',
  ) {
    super(code, message);
  }
}

/**
 * Invitations: the only way into a tenant besides creating it. The inviter
 * names an email and a role; the person signed in with that email accepts
 * (their consent), once, before the invitation expires.
 */
export class InvitationService {
  constructor(
    private readonly deps: {
      clock: Clock;
      audit: AuditService;
      ttlMs: number;
      /** Drops cached standings of a user whose memberships changed, on every replica. */
      invalidate: (what: { userId: string }) => Promise<void>;
    },
  ) {}

  /**
   * Invites `email` with `role`, replacing a pending invitation for the same
   * email. Whether the email has an account changes nothing in the answer.
   * Returns the token once; only its hash is stored.
   */
  async invite(
    em: EntityManager,
    principal: Principal,
    input: { email: string; role: TenantRole },
    origin: RequestOrigin,
  ): Promise<{ invitation: Invitation; token: string }> {
    const tenantId = requireTenant(principal);
    assertPerson(principal);
    assertCanGrant(principal, input.role);
    const email = input.email.trim();
    const emailNormalized = normaliseEmail(email);
    const token = `${TOKEN_PREFIX}${randomSecret(32)}`;
    const now = this.deps.clock.now();
    const invitation = await em.transactional(async (tx) => {
      await lockTenant(tx, tenantId);
      // One query whether or not the email has an account: members are visible to inviters anyway.
      const members = await tx
        .createQueryBuilder(Membership, 'm')
        .join('m.userId', 'u')
        .where({ 'm.tenantId': tenantId, 'u.emailNormalized': emailNormalized })
        .getCount();
      if (members > 0) {
        throw new DomainError('ALREADY_EXISTS', 'a member of this tenant already has this email');
      }
      // Inviting again is how an invitation is re-sent (its token was shown once), so the new one replaces it.
      for (const previous of await tx.find(Invitation, { ...pending(now), tenantId, emailNormalized })) {
        assertCanGrant(principal, previous.role);
        previous.revokedAt = now;
        this.deps.audit.record(
          tx,
          {
            action: 'invitation.revoked',
            tenantId,
            targetType: 'invitation',
            targetId: previous.id,
            details: { reason: 'replaced by a new invitation' },
          },
          { principal, origin },
        );
      }
      const created = tx.create(Invitation, {
        id: randomUUID(),
        tenantId,
        email,
        emailNormalized,
        role: input.role,
        tokenHash: sha256Hex(token),
        invitedByUserId: principal.userId,
        createdAt: now,
        expiresAt: new Date(now.getTime() + this.deps.ttlMs),
        acceptedAt: null,
        acceptedByUserId: null,
        revokedAt: null,
      });
      this.deps.audit.record(
        tx,
        {
          action: 'invitation.created',
          tenantId,
          targetType: 'invitation',
          targetId: created.id,
          details: { email, role: input.role, expiresAt: created.expiresAt.toISOString() },
        },
        { principal, origin },
      );
      return created;
    });
    return { invitation, token };
  }

  /** The tenant's pending invitations (not accepted, revoked or expired), by id. */
  async list(
    em: EntityManager,
    principal: Principal,
    query: { pageSize: number; afterId?: string },
  ): Promise<Invitation[]> {
    const tenantId = requireTenant(principal);
    return em.find(
      Invitation,
      { ...pending(this.deps.clock.now()), tenantId, ...(query.afterId ? { id: { $gt: query.afterId } } : {}) },
      { orderBy: { id: 'asc' }, limit: query.pageSize },
    );
  }

  async revoke(em: EntityManager, principal: Principal, id: string, origin: RequestOrigin): Promise<Invitation> {
    const tenantId = requireTenant(principal);
    assertPerson(principal);
    return em.transactional(async (tx) => {
      // Scoped by tenant: another tenant's invitation is simply not found.
      const invitation = await tx.findOne(Invitation, { id, tenantId }, { lockMode: LockMode.PESSIMISTIC_WRITE });
      if (!invitation) throw DomainError.notFound('invitation', id);
      // Cancelling what only an owner could grant is an owner's call.
      assertCanGrant(principal, invitation.role);
      if (invitation.acceptedAt) {
        throw new DomainError('FAILED_PRECONDITION', 'this invitation was accepted; remove the member instead');
      }
      if (!invitation.revokedAt) {
        invitation.revokedAt = this.deps.clock.now();
        this.deps.audit.record(
          tx,
          { action: 'invitation.revoked', tenantId, targetType: 'invitation', targetId: id },
          { principal, origin },
        );
      }
      return invitation;
    });
  }

  /** The signed-in person accepts an invitation sent to their email. */
  async accept(em: EntityManager, principal: Principal, token: string, origin: RequestOrigin): Promise<Joined> {
    assertPerson(principal);
    const user = await em.findOneOrFail(User, { id: principal.userId });
    const actor = { principal, origin };
    let joined: Joined;
    try {
      joined = await em.transactional((tx) => this.redeem(tx, token, user, actor));
    } catch (error) {
      if (error instanceof InvitationRefused) await this.recordRefusal(em, error, actor);
      throw error;
    }
    await this.deps.invalidate({ userId: user.id });
    return joined;
  }

  /**
   * Makes `user` a member through the invitation `token`, in the caller's
   * transaction (AcceptInvitation, or SignUp creating `user` in the same
   * transaction). Throws InvitationRefused, which the caller audits with
   * recordRefusal once its transaction is rolled back.
   */
  async redeem(tx: EntityManager, token: string, user: User, actor: InvitationActor): Promise<Joined> {
    const now = this.deps.clock.now();
    const tokenHash = sha256Hex(token);
    // Read, then lock the tenant, then lock the row: the same order as invite and the member changes.
    const found = await tx.findOne(Invitation, { tokenHash }, { disableIdentityMap: true });
    if (!found) throw new InvitationRefused('unknown token', null);
    const tenant = await lockTenant(tx, found.tenantId);
    const invitation = await tx.findOne(Invitation, { id: found.id }, { lockMode: LockMode.PESSIMISTIC_WRITE });
    if (!tenant || !invitation) throw new InvitationRefused('unknown token', null);
    if (invitation.revokedAt) throw new InvitationRefused('revoked', invitation);
    if (invitation.acceptedAt) throw new InvitationRefused('already used', invitation);
    if (invitation.expiresAt <= now) throw new InvitationRefused('expired', invitation);
    // A leaked token is useless to anyone but the person it was sent to.
    if (invitation.emailNormalized !== user.emailNormalized) {
      throw new InvitationRefused('sent to another email address', invitation);
    }
    // From here on the caller is the invitee: plain answers.
    if (await tx.findOne(Membership, { tenantId: invitation.tenantId, userId: user.id })) {
      throw new DomainError('ALREADY_EXISTS', 'you are already a member of this tenant');
    }
    await this.assertInviterMayStillGrant(tx, invitation);
    tx.create(Membership, { tenantId: invitation.tenantId, userId: user.id, role: invitation.role, createdAt: now });
    invitation.acceptedAt = now;
    invitation.acceptedByUserId = user.id;
    this.deps.audit.record(
      tx,
      {
        action: 'member.joined',
        tenantId: invitation.tenantId,
        targetType: 'user',
        targetId: user.id,
        details: {
          role: invitation.role,
          invitationId: invitation.id,
          invitedByUserId: invitation.invitedByUserId ?? '',
        },
      },
      { ...actor, userId: user.id },
    );
    await tx.flush();
    return { tenant, role: invitation.role };
  }

  /** Audits a refused acceptance (outside the rolled-back transaction), in the invitation's tenant when known. */
  async recordRefusal(em: EntityManager, refusal: InvitationRefused, actor: InvitationActor): Promise<void> {
    this.deps.audit.record(
      em,
      {
        action: 'invitation.accept_refused',
        tenantId: refusal.invitation?.tenantId ?? null,
        targetType: 'invitation',
        targetId: refusal.invitation?.id ?? '',
        details: { reason: refusal.reason },
      },
      actor,
    );
    await em.flush();
  }

  /**
   * An invitation carries its inviter's authority, checked when it is used:
   * an inviter who was since demoted, removed or suspended cannot bring in
   * someone they could no longer invite themselves: they must still manage
   * members (a DEVELOPER or VIEWER does not, whatever role they would grant)
   * and still be able to grant the role.
   */
  private async assertInviterMayStillGrant(tx: EntityManager, invitation: Invitation): Promise<void> {
    const inviterId = invitation.invitedByUserId;
    const [inviter, membership] = inviterId
      ? await Promise.all([
          tx.findOne(User, { id: inviterId }),
          tx.findOne(Membership, { tenantId: invitation.tenantId, userId: inviterId }),
        ])
      : [null, null];
    const mayInvite =
      inviter?.status === 'ACTIVE' &&
      membership !== null &&
      roleAllows(membership.role, 'members.manage') &&
      canGrantRole(membership.role, invitation.role);
    if (!mayInvite) {
      throw new InvitationRefused(
        'the inviter can no longer invite members with the role',
        invitation,
        'FAILED_PRECONDITION',
        `the person who invited you can no longer invite members as ${invitation.role}; ask the tenant for a new invitation`,
      );
    }
  }
}

/** Invitations that can still be accepted at `now`. */
function pending(now: Date) {
  return { acceptedAt: null, revokedAt: null, expiresAt: { $gt: now } };
}
