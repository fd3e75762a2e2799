import { randomUUID } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/postgresql';
import type { Clock } from '../../lib/clock.js';
import { DomainError } from '../../lib/errors.js';
import type { Principal, RequestOrigin } from '../identity/principal.js';
import { AuditEvent } from './audit-event.entity.js';

/** What happened, to what; the actor and origin come from the request. */
export interface AuditEntry {
  action: string;
  tenantId: string | null;
  targetType: string;
  targetId: string;
  details?: Record<string, string>;
}

/** Query of the audit log, newest first. */
export interface AuditQuery {
  tenantId: string | null;
  actionPrefix: string;
  pageSize: number;
  /** [occurredAt, id] of the last event on the previous page. */
  before?: { occurredAt: Date; id: string };
}

/**
 * Appends security-relevant events. Writes go through the caller's
 * EntityManager, so an event is stored in the same transaction as the change
 * it describes (or on its own, for refusals that change nothing).
 */
export class AuditService {
  constructor(private readonly clock: Clock) {}

  record(
    em: EntityManager,
    entry: AuditEntry,
    actor: { principal?: Principal; userId?: string | null; origin: RequestOrigin },
  ): void {
    const principal = actor.principal;
    em.create(AuditEvent, {
      id: randomUUID(),
      occurredAt: this.clock.now(),
      action: entry.action,
      tenantId: entry.tenantId,
      actorUserId: principal?.kind === 'user' ? principal.userId : (actor.userId ?? null),
      actorApiKeyId: principal?.kind === 'api-key' ? principal.apiKeyId : null,
      targetType: entry.targetType,
      targetId: entry.targetId,
      ip: actor.origin.ip,
      userAgent: actor.origin.userAgent.slice(0, 512),
      details: entry.details ?? {},
    });
  }

  /**
   * The tenant whose log `principal` reads (null: every tenant). Platform
   * admins read every tenant, or the one they name; everyone else reads
   * only their own and names none.
   */
  readableTenant(principal: Principal, requested: string | null): string | null {
    const platformAdmin = principal.kind === 'user' && principal.platformAdmin;
    if (requested && !platformAdmin) {
      throw new DomainError('PERMISSION_DENIED', 'only platform admins choose the tenant; yours is implied');
    }
    return platformAdmin ? requested : principal.tenantId;
  }

  async list(em: EntityManager, query: AuditQuery): Promise<AuditEvent[]> {
    const where: Record<string, unknown> = {};
    if (query.tenantId) where.tenantId = query.tenantId;
    if (query.actionPrefix) where.action = { $like: `${query.actionPrefix.replace(/[\\%_]/g, '\\$&')}%` };
    if (query.before) {
      where.$or = [
        { occurredAt: { $lt: query.before.occurredAt } },
        { occurredAt: query.before.occurredAt, id: { $lt: query.before.id } },
      ];
    }
    return em.find(AuditEvent, where, { orderBy: { occurredAt: 'desc', id: 'desc' }, limit: query.pageSize });
  }
}
