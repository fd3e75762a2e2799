import type { EntityManager } from '@mikro-orm/postgresql';
import type { AuditService } from '../audit/audit.service.js';
import type { Principal, RequestOrigin } from '../identity/principal.js';
import type { Clock } from '../../lib/clock.js';
import { PlatformSetting } from './platform-setting.entity.js';

/** The fleet-wide maintenance switch as the scheduler and operators read it. */
export interface MaintenanceState {
  enabled: boolean;
  message: string;
  since: Date | null;
  setByUserId: string | null;
}

const KEY = 'maintenance';
const OFF: MaintenanceState = { enabled: false, message: '', since: null, setByUserId: null };

/**
 * Fleet-wide maintenance: while on, no new work is placed and failed workers'
 * work is not reassigned automatically (the scheduler consults `current()`).
 * Stored in PostgreSQL so every replica agrees.
 */
export class MaintenanceService {
  constructor(
    private readonly clock: Clock,
    private readonly audit: AuditService,
  ) {}

  async current(em: EntityManager): Promise<MaintenanceState> {
    const row = await em.findOne(PlatformSetting, { key: KEY });
    if (!row) return OFF;
    const value = row.value as { enabled?: boolean; message?: string };
    return {
      enabled: value.enabled === true,
      message: value.message ?? '',
      since: row.updatedAt,
      setByUserId: row.updatedByUserId,
    };
  }

  async set(
    em: EntityManager,
    principal: Principal,
    input: { enabled: boolean; message: string },
    origin: RequestOrigin,
  ): Promise<MaintenanceState> {
    const now = this.clock.now();
    const userId = principal.kind === 'user' ? principal.userId : null;
    await em.upsert(PlatformSetting, {
      key: KEY,
      value: { enabled: input.enabled, message: input.message.trim() },
      updatedAt: now,
      updatedByUserId: userId,
    });
    this.audit.record(
      em,
      {
        action: input.enabled ? 'fleet.maintenance_on' : 'fleet.maintenance_off',
        tenantId: null,
        targetType: 'fleet',
        targetId: KEY,
        details: { message: input.message.trim() },
      },
      { principal, origin },
    );
    await em.flush();
    return { enabled: input.enabled, message: input.message.trim(), since: now, setByUserId: userId };
  }
}
