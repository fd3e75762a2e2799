import { randomUUID } from 'node:crypto';
import type { Clock } from '../../lib/clock.js';
import type { CoordinationStore, SlotClaim } from '../platform/coordination/coordination-store.js';
import { DomainError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { Scheduler, Timer } from '../../lib/timers.js';
import type { TenantPlan } from './identity.types.js';
import { principalSubject, type Principal } from './principal.js';

/** How many streams may be open at once, compiled from configuration. */
export interface StreamLimitTable {
  /** Per user or API key, by the tenant's plan (platform admins count as enterprise). */
  perCaller: Record<TenantPlan, number>;
  /** Per tenant, all its users and keys together, by plan. */
  perTenant: Record<TenantPlan, number>;
  /** Per client address, for calls without a credential (health watch) other than reflection. */
  anonymousPerIp: number;
  /**
   * Per client address, for server reflection: grpcurl and buf curl hold a
   * reflection stream for as long as each of their calls runs, so reflection
   * has its own (larger) cap and never takes the slots other anonymous
   * streams need, nor they its.
   */
  reflectionPerIp: number;
  /** A slot not renewed for this long is freed (its replica died). */
  slotTtlMs: number;
}

/** Who opens a stream: the caller (none without a credential), its address, and whether it is server reflection. */
export interface StreamOpener {
  principal: Principal | undefined;
  ip: string;
  reflection?: boolean;
}

/** An open stream's place under its limits; given back when the stream ends. */
export interface StreamSlot {
  release(): void;
}

/**
 * Caps concurrent server streams per caller, per tenant and, for anonymous
 * calls, per client address — across every replica, since the slots live
 * in the coordination store. The rate limit counts openings; this counts
 * what stays open (each stream holds memory and a file descriptor). Slots
 * expire unless renewed, so a replica that dies gives its callers' slots
 * back within one TTL.
 */
export class StreamLimits {
  /** Slots this replica holds: member -> keys. */
  private readonly held = new Map<string, readonly string[]>();
  private renewTimer: Timer | undefined;
  private stopped = false;
  private readonly log: Logger;

  constructor(
    private readonly store: CoordinationStore,
    private readonly clock: Clock,
    private readonly scheduler: Scheduler,
    private readonly table: StreamLimitTable,
    logger: Logger,
  ) {
    this.log = logger.child({ component: 'stream-limits' });
  }

  start(): void {
    this.stopped = false;
    this.scheduleRenewal();
  }

  stop(): void {
    this.stopped = true;
    this.renewTimer?.cancel();
  }

  /** Streams this replica holds open under limits, for tests and metrics. */
  get open(): number {
    return this.held.size;
  }

  /** Takes a slot for a new stream, or refuses with RESOURCE_EXHAUSTED naming the limit. */
  async acquire(caller: StreamOpener): Promise<StreamSlot> {
    const claims = this.claimsOf(caller);
    const member = randomUUID();
    const now = this.clock.now().getTime();
    const full = await this.store.acquireSlots(claims, member, now, now + this.table.slotTtlMs);
    if (full !== null)
      throw this.refusal(
        caller,
        claims.find((claim) => claim.key === full),
      );
    const keys = claims.map((claim) => claim.key);
    this.held.set(member, keys);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.held.delete(member);
        this.store.releaseSlots(keys, member).catch((error: unknown) => {
          // The slot expires by itself within one TTL.
          this.log.warn({ err: error }, 'could not release a stream slot');
        });
      },
    };
  }

  private claimsOf(caller: StreamOpener): SlotClaim[] {
    const { principal } = caller;
    // Reflection is public: credentials sent along (buf curl forwards -H) do not make it the caller's stream.
    if (caller.reflection) return [{ key: `streams:reflection:ip:${caller.ip}`, limit: this.table.reflectionPerIp }];
    if (!principal) return [{ key: `streams:ip:${caller.ip}`, limit: this.table.anonymousPerIp }];
    const tier = principal.kind === 'user' && principal.platformAdmin ? 'enterprise' : principal.plan;
    const claims: SlotClaim[] = [{ key: `streams:${principalSubject(principal)}`, limit: this.table.perCaller[tier] }];
    if (principal.tenantId) {
      claims.push({ key: `streams:tenant:${principal.tenantId}`, limit: this.table.perTenant[principal.plan] });
    }
    return claims;
  }

  private refusal(caller: StreamOpener, claim: SlotClaim | undefined): DomainError {
    const { principal } = caller;
    const limit = claim?.limit ?? 0;
    if (caller.reflection) {
      return new DomainError(
        'RESOURCE_EXHAUSTED',
        `too many open server reflection streams from this address (at most ${limit}): ` +
          'each running grpcurl or buf curl call holds one; let some finish',
        { details: { limit, scope: 'reflection' } },
      );
    }
    const scope = !principal ? 'address' : claim?.key.startsWith('streams:tenant:') ? 'tenant' : 'caller';
    const whose =
      scope === 'address'
        ? 'from this address without credentials'
        : scope === 'tenant'
          ? `for this tenant (the ${principal?.plan ?? ''} plan allows ${limit})`
          : `for this ${principal?.kind === 'api-key' ? 'API key' : 'user'} (at most ${limit})`;
    return new DomainError('RESOURCE_EXHAUSTED', `too many open streams ${whose}; close one first`, {
      details: { limit, scope },
    });
  }

  private scheduleRenewal(): void {
    if (this.stopped) return;
    this.renewTimer = this.scheduler.schedule(this.table.slotTtlMs / 3, () => {
      void this.renew().finally(() => this.scheduleRenewal());
    });
  }

  private async renew(): Promise<void> {
    if (this.held.size === 0) return;
    const slots = [...this.held].flatMap(([member, keys]) => keys.map((key) => ({ key, member })));
    const now = this.clock.now().getTime();
    try {
      await this.store.renewSlots(slots, now, now + this.table.slotTtlMs);
    } catch (error) {
      this.log.warn({ err: error, slots: slots.length }, 'could not renew stream slots');
    }
  }
}
