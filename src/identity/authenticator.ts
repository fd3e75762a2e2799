import type { MikroORM } from '@mikro-orm/postgresql';
import type { Clock } from '../../lib/clock.js';
import { DomainError } from '../../lib/errors.js';
import { TtlCache } from '../platform/ttl-cache.js';
import { Membership, Tenant, User } from './account.entity.js';
import { ApiKeyService } from './api-key.service.js';
import { AuthSession } from './auth-session.entity.js';
import type { TenantPlan, TenantRole } from './identity.types.js';
import type { Principal } from './principal.js';
import type { TokenService } from './token.service.js';
import type { AuthInvalidation, InvalidationEvent } from './auth-invalidation.js';

/** What the database says about a signed-in user right now (cached briefly). */
interface UserStanding {
  active: boolean;
  platformAdmin: boolean;
  sessionRevoked: boolean;
  role: TenantRole | null;
  plan: TenantPlan;
  /** False when the token names a tenant the user no longer belongs to. */
  member: boolean;
}

/**
 * Turns the credential of a request (`authorization: Bearer <jwt | api key>`
 * or `x-api-key`) into a Principal. The role comes from the database (cached
 * for a few seconds), not from the token, so suspensions, removals and role
 * changes take effect within the cache TTL rather than the token lifetime.
 */
export class Authenticator {
  private readonly standings: TtlCache<UserStanding>;

  constructor(
    private readonly orm: MikroORM,
    private readonly tokens: TokenService,
    private readonly apiKeys: ApiKeyService,
    clock: Clock,
    cacheTtlMs: number,
    invalidation: AuthInvalidation,
  ) {
    this.standings = new TtlCache(clock, cacheTtlMs);
    invalidation.onInvalidate((event) => this.invalidate(event));
  }

  /** The credential in the headers, or undefined when there is none. */
  static credentialFrom(headers: Headers): string | undefined {
    const authorization = headers.get('authorization');
    if (authorization) {
      const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
      if (!match?.[1]) throw new DomainError('UNAUTHENTICATED', 'authorization header must be "Bearer <token>"');
      return match[1];
    }
    return headers.get('x-api-key') ?? undefined;
  }

  async authenticate(credential: string): Promise<Principal> {
    if (ApiKeyService.isApiKey(credential)) return this.apiKeys.authenticate(credential);
    const claims = await this.tokens.verifyAccessToken(credential);
    const standing = await this.standings.getOrLoad(
      `${claims.userId}|${claims.sessionId}|${claims.tenantId ?? ''}`,
      () => this.loadStanding(claims.userId, claims.sessionId, claims.tenantId),
    );
    if (!standing.active) throw new DomainError('UNAUTHENTICATED', 'user is suspended');
    if (standing.sessionRevoked) throw new DomainError('UNAUTHENTICATED', 'session has ended; log in again');
    if (!standing.member) throw new DomainError('UNAUTHENTICATED', 'no longer a member of this tenant');
    return {
      kind: 'user',
      userId: claims.userId,
      tenantId: claims.tenantId,
      role: standing.role,
      plan: standing.plan,
      platformAdmin: standing.platformAdmin,
      sessionId: claims.sessionId,
      expiresAt: claims.expiresAt,
    };
  }

  /** Forgets cached standings so the next call re-reads them (local and broadcast invalidation). */
  private invalidate(what: InvalidationEvent): void {
    if (what.userId) this.standings.deletePrefix(`${what.userId}|`);
    // Rare (logout, token reuse, a tenant's plan or status) and keys start with the user id: clearing all is simplest.
    if (what.sessionId || what.tenantId) this.standings.clear();
  }

  private async loadStanding(userId: string, sessionId: string, tenantId: string | null): Promise<UserStanding> {
    const em = this.orm.em.fork();
    const [user, session, membership, tenant] = await Promise.all([
      em.findOne(User, { id: userId }),
      em.findOne(AuthSession, { id: sessionId }),
      tenantId ? em.findOne(Membership, { userId, tenantId }) : Promise.resolve(null),
      tenantId ? em.findOne(Tenant, { id: tenantId }) : Promise.resolve(null),
    ]);
    return {
      active: user?.status === 'ACTIVE',
      platformAdmin: user?.platformAdmin ?? false,
      sessionRevoked: !session || session.revokedAt !== null || session.userId !== userId,
      role: membership?.role ?? null,
      plan: tenant?.plan ?? 'free',
      member: tenantId === null || membership !== null,
    };
  }
}
