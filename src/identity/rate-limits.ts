import { RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { CoordinationStore } from '../platform/coordination/coordination-store.js';
import { DomainError } from '../platform/errors.js';
import type { TenantPlan } from './identity.types.js';

/** Calls per minute: per API key or user by the tenant's plan, per IP when anonymous. */
export type RateLimitTable = Record<TenantPlan | 'anonymous', number>;

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
  private readonly limiters = new Map<keyof RateLimitTable, RateLimiterAbstract>();

  constructor(
    store: CoordinationStore,
    private readonly table: RateLimitTable,
  ) {
    for (const tier of Object.keys(table) as (keyof RateLimitTable)[]) {
      this.limiters.set(
        tier,
        store.createRateLimiter({ keyPrefix: `rate:${tier}`, points: table[tier], durationSeconds: 60 }),
      );
    }
  }

  async consume(subject: string, tier: keyof RateLimitTable): Promise<RateLimitState> {
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
        `rate limit of ${limit} calls per minute exceeded; retry in ${retryAfter} s`,
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
