import { randomBytes } from 'node:crypto';
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import type { AuditService } from '../audit/audit.service.js';
import type { Clock } from '../../lib/clock.js';
import { DomainError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { every, type Scheduler, type Timer } from '../../lib/timers.js';
import type { AuthInvalidation } from './auth-invalidation.js';
import { TtlCache } from '../platform/ttl-cache.js';
import { Membership, Tenant, User } from './account.entity.js';
import { ApiKey } from './api-key.entity.js';
import type { TenantPlan, TenantRole } from './identity.types.js';
import type { Principal, RequestOrigin } from './principal.js';
import { canGrantRole, lesserRole } from './roles.js';
import { digestsEqual, randomSecret, sha256Hex } from './secrets.js';

/** Greppable by secret scanners: `sb_live_<id>_<secret>`. */
const KEY_PATTERN = /^sb_live_([a-z0-9]{16})_([A-Za-z0-9_-]{43})$/;

/** What authentication needs to know about a key; cached per replica. */
interface CachedKey {
  tenantId: string;
  role: TenantRole;
  /** Null for keys minted by other keys before only people could create them. */
  createdByUserId: string | null;
  /** The creator's current role in the key's tenant; null once they are no longer a member. */
  creatorRole: TenantRole | null;
  /** The creator is suspended: the key is refused until they are reactivated. */
  creatorSuspended: boolean;
  plan: TenantPlan;
  secretHash: string;
  expiresAt: Date | null;
  revokedAt: Date | null;
}

/** Creates, lists, revokes and authenticates tenant API keys. */
export class ApiKeyService {
  // Bounded: unknown ids are cached too (as null) so guessing cannot grow memory without limit.
  private readonly cache: TtlCache<CachedKey | null>;
  private readonly lastUsed = new Map<string, Date>();
  private lastUsedTimer: Timer | undefined;

  constructor(
    private readonly orm: MikroORM,
    private readonly clock: Clock,
    private readonly scheduler: Scheduler,
    private readonly audit: AuditService,
    private readonly options: { cacheTtlMs: number; lastUsedFlushMs: number },
    private readonly invalidation: AuthInvalidation,
    private readonly log: Logger,
  ) {
    this.cache = new TtlCache(clock, options.cacheTtlMs, 50_000);
    invalidation.onInvalidate((event) => {
      if (event.apiKeyId) this.forget(event.apiKeyId);
      // A tenant's plan or standing changed: every key's cached plan may be stale.
      if (event.tenantId) this.cache.clear();
      // A creator's role change, removal or suspension changes what their keys may do.
      if (event.userId) this.cache.deleteWhere((key) => key?.createdByUserId === event.userId);
    });
  }

  start(): void {
    this.lastUsedTimer = every(this.scheduler, this.options.lastUsedFlushMs, () => void this.flushLastUsed());
  }

  async stop(): Promise<void> {
    this.lastUsedTimer?.cancel();
    await this.flushLastUsed();
  }

  static isApiKey(credential: string): boolean {
    return credential.startsWith('sb_live_');
  }

  async create(
    em: EntityManager,
    principal: Principal,
    input: { name: string; role: TenantRole; expiresAt: Date | null },
    origin: RequestOrigin,
  ): Promise<{ apiKey: ApiKey; secret: string }> {
    const tenantId = requireTenant(principal);
    if (principal.kind !== 'user') {
      // A leaked key must not be able to mint itself a successor that outlives its revocation.
      throw new DomainError('PERMISSION_DENIED', 'API keys are created by people, not by other API keys');
    }
    if (input.name.trim() === '') throw DomainError.invalidArgument('name', 'must not be blank');
    if (!principal.role || !canGrantRole(principal.role, input.role)) {
      throw new DomainError(
        'PERMISSION_DENIED',
        `role ${principal.role ?? 'none'} cannot create ${withArticle(input.role)} key`,
      );
    }
    const id = randomBytes(10).toString('hex').slice(0, 16);
    const secretPart = randomSecret(32);
    const apiKey = em.create(ApiKey, {
      id,
      tenantId,
      name: input.name.trim(),
      role: input.role,
      secretHash: sha256Hex(secretPart),
      createdByUserId: principal.kind === 'user' ? principal.userId : null,
      createdAt: this.clock.now(),
      expiresAt: input.expiresAt,
      revokedAt: null,
      lastUsedAt: null,
    });
    this.audit.record(
      em,
      {
        action: 'api_key.created',
        tenantId,
        targetType: 'api_key',
        targetId: id,
        details: { name: apiKey.name, role: input.role },
      },
      { principal, origin },
    );
    await em.flush();
    return { apiKey, secret: `sb_live_${id}_${secretPart}` };
  }

  async list(
    em: EntityManager,
    principal: Principal,
    query: { pageSize: number; afterId?: string; includeInactive: boolean },
  ): Promise<ApiKey[]> {
    const tenantId = requireTenant(principal);
    const now = this.clock.now();
    return em.find(
      ApiKey,
      {
        tenantId,
        ...(query.afterId ? { id: { $gt: query.afterId } } : {}),
        ...(query.includeInactive ? {} : { revokedAt: null, $or: [{ expiresAt: null }, { expiresAt: { $gt: now } }] }),
      },
      { orderBy: { id: 'asc' }, limit: query.pageSize },
    );
  }

  async revoke(em: EntityManager, principal: Principal, id: string, origin: RequestOrigin): Promise<ApiKey> {
    const tenantId = requireTenant(principal);
    // Scoped by tenant: another tenant's key id is simply not found.
    const apiKey = await em.findOne(ApiKey, { id, tenantId });
    if (!apiKey) throw DomainError.notFound('API key', id);
    if (!principal.role || !canGrantRole(principal.role, apiKey.role)) {
      throw new DomainError('PERMISSION_DENIED', `your role cannot revoke ${withArticle(apiKey.role)} key`);
    }
    if (!apiKey.revokedAt) {
      apiKey.revokedAt = this.clock.now();
      this.audit.record(
        em,
        { action: 'api_key.revoked', tenantId, targetType: 'api_key', targetId: id },
        { principal, origin },
      );
      await em.flush();
    }
    await this.invalidation.publish({ apiKeyId: id });
    return apiKey;
  }

  /**
   * Revokes the keys a user created in a tenant they leave: keys do not
   * outlive the authority of the person who made them. (A suspension revokes
   * nothing: keys are refused while their creator is suspended.)
   */
  async revokeCreatedBy(em: EntityManager, userId: string, tenantId: string): Promise<void> {
    const keys = await em.find(ApiKey, { createdByUserId: userId, revokedAt: null, tenantId });
    const now = this.clock.now();
    for (const key of keys) key.revokedAt = now;
    await em.flush();
    for (const key of keys) await this.invalidation.publish({ apiKeyId: key.id });
  }

  /** Drops a key from this replica's cache (called locally and on a revocation broadcast). */
  forget(id: string): void {
    this.cache.delete(id);
  }

  /**
   * Resolves `sb_live_...` to a principal, or refuses with UNAUTHENTICATED.
   * The key acts with the lesser of its own role and its creator's current
   * role: a key never does more than the person answerable for it could.
   * Cached; PostgreSQL is read once per TTL or after an invalidation.
   */
  async authenticate(credential: string): Promise<Principal> {
    const match = KEY_PATTERN.exec(credential);
    if (!match) throw new DomainError('UNAUTHENTICATED', 'malformed API key');
    const [, id = '', secret = ''] = match;
    const key = await this.lookup(id);
    const now = this.clock.now();
    if (!key || !digestsEqual(key.secretHash, sha256Hex(secret))) {
      throw new DomainError('UNAUTHENTICATED', 'invalid API key');
    }
    if (key.revokedAt) throw new DomainError('UNAUTHENTICATED', 'API key revoked');
    if (key.expiresAt && key.expiresAt <= now) throw new DomainError('UNAUTHENTICATED', 'API key expired');
    if (!key.createdByUserId) {
      throw new DomainError('UNAUTHENTICATED', 'API key has no creator to answer for it; create a new key');
    }
    if (!key.creatorRole) {
      throw new DomainError('UNAUTHENTICATED', 'the creator of this API key can no longer act in its tenant');
    }
    if (key.creatorSuspended) {
      throw new DomainError(
        'UNAUTHENTICATED',
        'the creator of this API key is suspended; it works again if they are reactivated',
      );
    }
    this.lastUsed.set(id, now);
    const role = lesserRole(key.role, key.creatorRole);
    return {
      kind: 'api-key',
      apiKeyId: id,
      tenantId: key.tenantId,
      role,
      plan: key.plan,
      expiresAt: key.expiresAt,
      creatorUserId: key.createdByUserId,
    };
  }

  private async lookup(id: string): Promise<CachedKey | null> {
    return this.cache.getOrLoad(id, async () => {
      const em = this.orm.em.fork();
      const row = await em.findOne(ApiKey, { id });
      if (!row) return null;
      const creatorId = row.createdByUserId;
      const [tenant, creator, creatorMembership] = await Promise.all([
        em.findOne(Tenant, { id: row.tenantId }),
        creatorId ? em.findOne(User, { id: creatorId }) : Promise.resolve(null),
        creatorId ? em.findOne(Membership, { tenantId: row.tenantId, userId: creatorId }) : Promise.resolve(null),
      ]);
      return tenant
        ? {
            tenantId: row.tenantId,
            role: row.role,
            createdByUserId: creatorId,
            creatorRole: creator ? (creatorMembership?.role ?? null) : null,
            creatorSuspended: creator?.status !== 'ACTIVE',
            plan: tenant.plan,
            secretHash: row.secretHash,
            expiresAt: row.expiresAt,
            revokedAt: row.revokedAt,
          }
        : null;
    });
  }

  // Last-used times are written in batches: a busy key would otherwise cost a write per call.
  private async flushLastUsed(): Promise<void> {
    if (this.lastUsed.size === 0) return;
    const batch = [...this.lastUsed.entries()];
    this.lastUsed.clear();
    try {
      const em = this.orm.em.fork();
      for (const [id, at] of batch) await em.nativeUpdate(ApiKey, { id }, { lastUsedAt: at });
    } catch (error) {
      this.log.warn({ err: error }, 'could not record API key last-used times');
    }
  }
}

export function requireTenant(principal: Principal): string {
  if (!principal.tenantId) throw new DomainError('FAILED_PRECONDITION', 'this credential does not act in a tenant');
  return principal.tenantId;
}

/** "an ADMIN", "an OWNER", "a DEVELOPER", "a VIEWER": for messages naming a role. */
function withArticle(role: TenantRole): string {
  return `${/^[AEIOU]/.test(role) ? 'an' : 'a'} ${role}`;
}
