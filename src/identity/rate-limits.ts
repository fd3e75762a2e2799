import { RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { CoordinationStore } from '../platform/coordination/coordination-store.js';
import { DomainError } from '../../lib/errors.js';
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
 * Per-caller request limits (fixed one-minute windows in the coordination
 * store, shared by all replicas). A refusal is RESOURCE_EXHAUSTED with
 * retry-after.
 */
export class RateLimits {
  private readonly limiters = new Map<RateLimitTier, RateLimiterAbstract>();

  constructor(
    store: CoordinationStore,
    private readonly table: RateLimitTable,
  ) {
    const durationSeconds = Math.max(1, Math.round(table.windowMs / 1000));
    for (const tier of ['anonymous', 'free', 'pro', 'enterprise'] as const) {
      this.limiters.set(
        tier,
        store.createRateLimiter({ keyPrefix: `rate:${tier}`, points: table[tier], durationSeconds }),
      );
    }
  }

  async consume(subject: string, tier: RateLimitTier): Promise<RateLimitState> {
    const limiter = this.limiters.get(tier);
    if (!limiter) throw new Error(`no rate limit for ${tier}`);
    const limit = this.table[tier];
    try {
      const result = await limiter.consume(subject, 1);
      return { limit, remaining: result.remainingPoints, resetSeconds: Math.ceil(result.msBeforeNext / 1000) };
    } catch (refused) {
      if (!(refused instanceof RateLimiterRes)) throw refused;
      const retryAfter = Math.max(1, Math.ceil(refused.msBeforeNext / 1000));
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
}
