import { randomUUID } from 'node:crypto';
import { LockMode, UniqueConstraintViolationException } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import type { AuditService } from '../audit/audit.service.js';
import type { Clock } from '../../lib/clock.js';
import { DomainError } from '../../lib/errors.js';
import { Membership, Tenant, User } from './account.entity.js';
import { AuthSession, RefreshToken } from './auth-session.entity.js';
import type { TenantRole, UserStatus } from './identity.types.js';
import { InvitationRefused, type InvitationService } from './invitation.service.js';
import type { LoginThrottle } from './login-throttle.js';
import type { PasswordHasher } from './password-hasher.js';
import type { Principal, RequestOrigin } from './principal.js';
import { maskEmail, normaliseEmail, randomSecret, sha256Hex } from './secrets.js';
import type { TokenService } from './token.service.js';

/** Tokens handed to a client after sign-in or refresh. */
export interface IssuedTokens {
  accessToken: string;
  accessTokenExpiresAt: Date;
  refreshToken: string;
  refreshTokenExpiresAt: Date;
}

/** The caller as GetMe describes them. */
export interface Me {
  user: User | null;
  tenant: Tenant | null;
  role: TenantRole | null;
  memberships: { tenant: Tenant; role: TenantRole }[];
  apiKeyId: string | null;
}

/** Everything AuthService needs besides the request's EntityManager. */
export interface AuthDependencies {
  clock: Clock;
  hasher: PasswordHasher;
  tokens: TokenService;
  throttle: LoginThrottle;
  audit: AuditService;
  refreshTokenTtlMs: number;
  /** Called when sessions or users change so cached principals are dropped on every replica. */
  invalidate: (what: { userId?: string; sessionId?: string }) => Promise<void>;
  /** Lets a person without an account sign up straight into the tenant that invited them. */
  invitations: Pick<InvitationService, 'redeem' | 'recordRefusal'>;
}

const REFRESH_PREFIX = 'sbr_';

/** Sign-up, sign-in, token rotation and password changes. */
export class AuthService {
  constructor(private readonly deps: AuthDependencies) {}

  /**
   * Creates a user and signs them in. Without an invitation they own a new
   * tenant; with one they join the inviting tenant instead (nothing else is
   * created, and a refused invitation leaves no account behind).
   */
  async signUp(
    em: EntityManager,
    input: { email: string; password: string; displayName: string; tenantName: string; invitationToken: string },
    origin: RequestOrigin,
  ): Promise<{ user: User; tenant: Tenant; tokens: IssuedTokens }> {
    if (input.displayName.trim() === '') throw DomainError.invalidArgument('display_name', 'must not be blank');
    if (!input.invitationToken && input.tenantName.trim() === '') {
      throw DomainError.invalidArgument('tenant_name', 'must not be blank');
    }
    const now = this.deps.clock.now();
    const passwordHash = await this.deps.hasher.hash(input.password);
    try {
      return await em.transactional(async (tx) => {
        const user = this.createUser(tx, { ...input, passwordHash, platformAdmin: false, now });
        const tenant = input.invitationToken
          ? (await this.deps.invitations.redeem(tx, input.invitationToken, user, { userId: user.id, origin })).tenant
          : this.createTenant(tx, user, input.tenantName, now);
        const tokens = await this.startSession(tx, user, tenant.id, origin);
        this.deps.audit.record(
          tx,
          { action: 'auth.signed_up', tenantId: tenant.id, targetType: 'user', targetId: user.id },
          { userId: user.id, origin },
        );
        return { user, tenant, tokens };
      });
    } catch (error) {
      if (error instanceof InvitationRefused) await this.deps.invitations.recordRefusal(em, error, { origin });
      if (error instanceof UniqueConstraintViolationException) {
        throw new DomainError('ALREADY_EXISTS', 'an account with this email already exists; log in instead');
      }
      throw error;
    }
  }

  async login(
    em: EntityManager,
    input: { email: string; password: string; tenantId: string },
    origin: RequestOrigin,
  ): Promise<IssuedTokens> {
    const email = normaliseEmail(input.email);
    const attempt = await this.deps.throttle.beginLogin(email, origin.ip);
    const user = await em.findOne(User, { emailNormalized: email }, { populate: ['passwordHash'] });
    const valid = user
      ? await this.deps.hasher.verify(user.passwordHash, input.password)
      : await this.deps.hasher.verifyNothing(input.password);
    if (!user || !valid || user.status !== 'ACTIVE') {
      // A known user is named by id only; an unknown email only masked, as
      // what was typed there may be a password.
      this.deps.audit.record(
        em,
        {
          action: 'auth.login.failed',
          tenantId: null,
          targetType: 'user',
          targetId: user?.id ?? '',
          details: user
            ? { reason: valid ? 'user suspended' : 'wrong password' }
            : { reason: 'unknown email', maskedEmail: maskEmail(email) },
        },
        { userId: null, origin },
      );
      await em.flush();
      await attempt.failed();
      // One message for every cause: no account enumeration.
      throw new DomainError('UNAUTHENTICATED', 'invalid email or password');
    }
    await attempt.succeeded();
    const membership = await this.chooseMembership(em, user, input.tenantId);
    return em.transactional(async (tx) => {
      if (this.deps.hasher.needsRehash(user.passwordHash)) {
        user.passwordHash = await this.deps.hasher.hash(input.password);
        tx.persist(user);
      }
      const tokens = await this.startSession(tx, user, membership?.tenantId ?? null, origin);
      this.deps.audit.record(
        tx,
        {
          action: 'auth.login.succeeded',
          tenantId: membership?.tenantId ?? null,
          targetType: 'user',
          targetId: user.id,
        },
        { userId: user.id, origin },
      );
      return tokens;
    });
  }

  /** Exchanges a refresh token once. A second exchange of the same token revokes its whole session. */
  async refresh(em: EntityManager, refreshToken: string, origin: RequestOrigin): Promise<IssuedTokens> {
    const invalid = () => new DomainError('UNAUTHENTICATED', 'invalid or expired refresh token');
    if (!refreshToken.startsWith(REFRESH_PREFIX)) throw invalid();
    const now = this.deps.clock.now();
    const outcome = await em.transactional(async (tx) => {
      const token = await tx.findOne(
        RefreshToken,
        { tokenHash: sha256Hex(refreshToken) },
        { lockMode: LockMode.PESSIMISTIC_WRITE },
      );
      if (!token) return { error: invalid() };
      const session = await tx.findOneOrFail(AuthSession, { id: token.sessionId });
      if (session.revokedAt) return { error: invalid() };
      if (token.usedAt) {
        session.revokedAt = now;
        session.revokedReason = 'refresh token reused';
        this.deps.audit.record(
          tx,
          {
            action: 'auth.refresh_token.reused',
            tenantId: session.tenantId,
            targetType: 'session',
            targetId: session.id,
            details: { reason: 'a rotated refresh token was presented again; session revoked' },
          },
          { userId: session.userId, origin },
        );
        return { error: invalid(), revokedSession: session.id };
      }
      if (token.expiresAt <= now) return { error: invalid() };
      const user = await tx.findOneOrFail(User, { id: session.userId });
      if (user.status !== 'ACTIVE') return { error: invalid() };
      if (session.tenantId) {
        const membership = await tx.findOne(Membership, { tenantId: session.tenantId, userId: user.id });
        if (!membership) return { error: invalid() };
      }
      token.usedAt = now;
      return { tokens: await this.issueTokens(tx, user, session) };
    });
    if (outcome.revokedSession) await this.deps.invalidate({ sessionId: outcome.revokedSession });
    if (outcome.error) throw outcome.error;
    return outcome.tokens;
  }

  async logout(em: EntityManager, principal: Principal, origin: RequestOrigin): Promise<void> {
    if (principal.kind !== 'user') throw new DomainError('FAILED_PRECONDITION', 'API keys have no session to end');
    await this.revokeSessions(em, { id: principal.sessionId }, 'logged out');
    this.deps.audit.record(
      em,
      { action: 'auth.logged_out', tenantId: principal.tenantId, targetType: 'session', targetId: principal.sessionId },
      { principal, origin },
    );
    await em.flush();
    await this.deps.invalidate({ sessionId: principal.sessionId });
  }

  async changePassword(
    em: EntityManager,
    principal: Principal,
    input: { currentPassword: string; newPassword: string },
    origin: RequestOrigin,
  ): Promise<void> {
    if (principal.kind !== 'user') throw new DomainError('FAILED_PRECONDITION', 'API keys have no password');
    const user = await em.findOneOrFail(User, { id: principal.userId }, { populate: ['passwordHash'] });
    // A stolen access token must not become a password oracle; this counter
    // is the user's own, so these failures never hold up their logins.
    const attempt = await this.deps.throttle.beginPasswordChange(user.id);
    if (!(await this.deps.hasher.verify(user.passwordHash, input.currentPassword))) {
      this.deps.audit.record(
        em,
        {
          action: 'auth.password_change.failed',
          tenantId: principal.tenantId,
          targetType: 'user',
          targetId: user.id,
          details: { reason: 'wrong current password' },
        },
        { principal, origin },
      );
      await em.flush();
      await attempt.failed();
      throw new DomainError('PERMISSION_DENIED', 'current password is wrong');
    }
    await attempt.succeeded();
    if (input.currentPassword === input.newPassword) {
      throw DomainError.invalidArgument('new_password', 'must differ from the current password');
    }
    user.passwordHash = await this.deps.hasher.hash(input.newPassword);
    user.passwordChangedAt = this.deps.clock.now();
    await this.revokeSessions(em, { userId: user.id, id: { $ne: principal.sessionId } }, 'password changed');
    this.deps.audit.record(
      em,
      { action: 'auth.password_changed', tenantId: principal.tenantId, targetType: 'user', targetId: user.id },
      { principal, origin },
    );
    await em.flush();
    await this.deps.invalidate({ userId: user.id });
  }

  async me(em: EntityManager, principal: Principal): Promise<Me> {
    const tenant = principal.tenantId ? await em.findOne(Tenant, { id: principal.tenantId }) : null;
    if (principal.kind === 'api-key') {
      return { user: null, tenant, role: principal.role, memberships: [], apiKeyId: principal.apiKeyId };
    }
    const user = await em.findOneOrFail(User, { id: principal.userId });
    const memberships = await em.find(Membership, { userId: user.id }, { orderBy: { createdAt: 'asc' } });
    const tenants = await em.find(Tenant, { id: { $in: memberships.map((m) => m.tenantId) } });
    const byId = new Map(tenants.map((t) => [t.id, t]));
    return {
      user,
      tenant,
      role: principal.role,
      memberships: memberships.flatMap((m) => {
        const t = byId.get(m.tenantId);
        return t ? [{ tenant: t, role: m.role }] : [];
      }),
      apiKeyId: null,
    };
  }

  /** Creates a platform admin, or resets an existing user's password and makes them one (bootstrap CLI). */
  async ensurePlatformAdmin(
    em: EntityManager,
    input: { email: string; password: string },
    options: { resetExisting: boolean } = { resetExisting: true },
  ): Promise<{ user: User; created: boolean }> {
    const now = this.deps.clock.now();
    const passwordHash = await this.deps.hasher.hash(input.password);
    return em.transactional(async (tx) => {
      const existing = await tx.findOne(User, { emailNormalized: normaliseEmail(input.email) });
      if (existing && !options.resetExisting) return { user: existing, created: false };
      if (existing) {
        existing.passwordHash = passwordHash;
        existing.passwordChangedAt = now;
        existing.platformAdmin = true;
        existing.status = 'ACTIVE';
        await this.revokeSessions(tx, { userId: existing.id }, 'password reset by administrator');
        return { user: existing, created: false };
      }
      const user = this.createUser(tx, {
        email: input.email,
        displayName: 'Platform admin',
        passwordHash,
        platformAdmin: true,
        now,
      });
      return { user, created: true };
    });
  }

  /** Suspending signs the user out everywhere; their tokens stop working within the principal cache TTL. */
  async setUserStatus(
    em: EntityManager,
    principal: Principal,
    input: { userId: string; status: UserStatus },
    origin: RequestOrigin,
  ): Promise<User> {
    const user = await em.findOne(User, { id: input.userId });
    if (!user) throw DomainError.notFound('user', input.userId);
    if (principal.kind === 'user' && principal.userId === user.id && input.status === 'SUSPENDED') {
      throw new DomainError('FAILED_PRECONDITION', 'you cannot suspend yourself');
    }
    user.status = input.status;
    // Their API keys are not revoked: a key is refused while its creator is
    // suspended (ApiKeyService reads the creator's standing), and works again
    // on reactivation unless someone revoked it meanwhile.
    if (input.status === 'SUSPENDED') await this.revokeSessions(em, { userId: user.id }, 'user suspended');
    this.deps.audit.record(
      em,
      {
        action: input.status === 'SUSPENDED' ? 'user.suspended' : 'user.reactivated',
        tenantId: null,
        targetType: 'user',
        targetId: user.id,
      },
      { principal, origin },
    );
    await em.flush();
    await this.deps.invalidate({ userId: user.id });
    return user;
  }

  private createTenant(em: EntityManager, owner: User, name: string, now: Date): Tenant {
    const tenant = em.create(Tenant, { id: randomUUID(), name: name.trim(), plan: 'free', createdAt: now });
    em.create(Membership, { tenantId: tenant.id, userId: owner.id, role: 'OWNER', createdAt: now });
    return tenant;
  }

  private createUser(
    em: EntityManager,
    input: { email: string; displayName: string; passwordHash: string; platformAdmin: boolean; now: Date },
  ): User {
    return em.create(User, {
      id: randomUUID(),
      email: input.email.trim(),
      emailNormalized: normaliseEmail(input.email),
      displayName: input.displayName.trim(),
      passwordHash: input.passwordHash,
      status: 'ACTIVE',
      platformAdmin: input.platformAdmin,
      createdAt: input.now,
      passwordChangedAt: input.now,
    });
  }

  private async chooseMembership(em: EntityManager, user: User, tenantId: string): Promise<Membership | null> {
    if (tenantId) {
      const membership = await em.findOne(Membership, { userId: user.id, tenantId });
      // Same answer for "no such tenant" and "not a member": no existence leak.
      if (!membership) throw DomainError.notFound('tenant', tenantId);
      return membership;
    }
    // A platform admin acts on the platform unless they name a tenant: being
    // added to some tenant must not put their sessions in that tenant's log.
    if (user.platformAdmin) return null;
    return em.findOne(Membership, { userId: user.id }, { orderBy: { createdAt: 'asc' } });
  }

  private async startSession(em: EntityManager, user: User, tenantId: string | null, origin: RequestOrigin) {
    const session = em.create(AuthSession, {
      id: randomUUID(),
      userId: user.id,
      tenantId,
      createdAt: this.deps.clock.now(),
      revokedAt: null,
      revokedReason: null,
      ip: origin.ip,
      userAgent: origin.userAgent.slice(0, 512),
    });
    return this.issueTokens(em, user, session);
  }

  private async issueTokens(em: EntityManager, user: User, session: AuthSession): Promise<IssuedTokens> {
    const now = this.deps.clock.now();
    const refreshToken = `${REFRESH_PREFIX}${randomSecret()}`;
    const refreshTokenExpiresAt = new Date(now.getTime() + this.deps.refreshTokenTtlMs);
    em.create(RefreshToken, {
      id: randomUUID(),
      tokenHash: sha256Hex(refreshToken),
      sessionId: session.id,
      expiresAt: refreshTokenExpiresAt,
      createdAt: now,
      usedAt: null,
    });
    const access = await this.deps.tokens.issueAccessToken({
      userId: user.id,
      tenantId: session.tenantId,
      sessionId: session.id,
    });
    return { accessToken: access.token, accessTokenExpiresAt: access.expiresAt, refreshToken, refreshTokenExpiresAt };
  }

  private async revokeSessions(em: EntityManager, where: Record<string, unknown>, reason: string): Promise<void> {
    await em.nativeUpdate(
      AuthSession,
      { ...where, revokedAt: null },
      { revokedAt: this.deps.clock.now(), revokedReason: reason },
    );
  }
}
