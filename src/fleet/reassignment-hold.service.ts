import type { EntityManager } from '@mikro-orm/postgresql';
import type { AuditService } from '../audit/audit.service.js';
import type { Principal, RequestOrigin } from '../identity/principal.js';
import type { Clock } from '../../lib/clock.js';
import { DomainError } from '../../lib/errors.js';
import { NO_HOLD, type ReassignmentHold } from './failure-guard.js';
import { PlatformSetting } from './platform-setting.entity.js';

const KEY = 'fleet.reassignment_hold';

interface StoredHold {
  active: boolean;
  since: string | null;
  reason: string;
  failedWorkers: number;
  fleetSize: number;
  releasedAt: string | null;
}

/**
 * The mass-failure guard's hold, shared by every replica through
 * PostgreSQL. Whatever reassigns failed workers' work must check `current()`
 * first; the sweeper trips and clears it, operators release it.
 */
export class ReassignmentHoldService {
  constructor(
    private readonly clock: Clock,
    private readonly audit: AuditService,
  ) {}

  async current(em: EntityManager): Promise<ReassignmentHold> {
    const row = await em.findOne(PlatformSetting, { key: KEY }, { disableIdentityMap: true });
    if (!row) return NO_HOLD;
    const value = row.value as unknown as StoredHold;
    return {
      active: value.active,
      since: value.since ? new Date(value.since) : null,
      reason: value.reason,
      failedWorkers: value.failedWorkers,
      fleetSize: value.fleetSize,
      releasedAt: value.releasedAt ? new Date(value.releasedAt) : null,
    };
  }

  async store(em: EntityManager, hold: ReassignmentHold, userId: string | null = null): Promise<void> {
    const value: StoredHold = {
      ...hold,
      since: hold.since?.toISOString() ?? null,
      releasedAt: hold.releasedAt?.toISOString() ?? null,
    };
    await em.upsert(PlatformSetting, {
      key: KEY,
      value: value as unknown as Record<string, unknown>,
      updatedAt: this.clock.now(),
      updatedByUserId: userId,
    });
  }

  /** An operator confirms the failures are real: reassignment may go ahead. */
  async release(
    em: EntityManager,
    principal: Principal,
    reason: string,
    origin: RequestOrigin,
  ): Promise<ReassignmentHold> {
    const hold = await this.current(em);
    if (!hold.active) throw new DomainError('FAILED_PRECONDITION', 'no reassignment hold is active');
    const userId = principal.kind === 'user' ? principal.userId : null;
    const released: ReassignmentHold = { ...NO_HOLD, releasedAt: this.clock.now() };
    await this.store(em, released, userId);
    this.audit.record(
      em,
      {
        action: 'fleet.reassignment_hold_released',
        tenantId: null,
        targetType: 'fleet',
        targetId: KEY,
        details: { reason: reason.trim(), heldSince: hold.since?.toISOString() ?? '', trippedBy: hold.reason },
      },
      { principal, origin },
    );
    await em.flush();
    return released;
  }
}
