import type { Clock } from '../../lib/clock.js';
import { DomainError } from '../../lib/errors.js';
import type { CoordinationStore } from '../platform/coordination/coordination-store.js';
import type { TenantPlan } from './identity.types.js';

/** Tiers: the tenant's plan for users and API keys, `anonymous` (per IP) for calls without credentials. */
export type RateLimitTier = TenantPlan | 'anonymous';

/** Calls allowed per window, per tier. */
export type RateLimitTable = Record<RateLimitTier, number> & { windowMs: number };

/** What a caller has left, for the `ratelimit-*` response headers. */
export interface RateLimitState {
  limit: number;
  remaining: number;
  resetSeconds: number;
}

/**
 * Per-caller request limits: a fixed window from the caller's first call,
 * counted in the coordination store (shared by all replicas) on this
 * replica's injected clock, so the rule runs under a fake clock in tests. A
 * refusal is RESOURCE_EXHAUSTED with retry-after.
 */
export class RateLimits {
  constructor(
    private readonly store: CoordinationStore,
    private readonly clock: Clock,
    private readonly table: RateLimitTable,
  ) {}

  async consume(subject: string, tier: RateLimitTier): Promise<RateLimitState> {
    const limit = this.table[tier];
    const nowMs = this.clock.now().getTime();
    const counted = await this.store.countAttempt(`rate:${tier}:${subject}`, nowMs, {
      windowMs: this.table.windowMs,
      limit,
    });
    const resetSeconds = Math.max(1, Math.ceil((counted.windowEndsAtMs - nowMs) / 1000));
    if (counted.allowed) return { limit, remaining: Math.max(0, limit - counted.count), resetSeconds };
    const retryAfter = Math.max(1, Math.ceil((counted.retryAtMs - nowMs) / 1000));
    throw new DomainError(
      'RESOURCE_EXHAUSTED',
      `rate limit of ${limit} calls per ${this.table.windowMs / 1000} s exceeded; retry in ${retryAfter} s`,
      {
        details: {
          'retry-after': retryAfter,
          'ratelimit-limit': limit,
          'ratelimit-remaining': 0,
          'ratelimit-reset': retryAfter,
        },
      },
    );
  }
}
