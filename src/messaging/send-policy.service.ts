import type { EntityManager } from '@mikro-orm/postgresql';
import { DomainError } from '../../lib/errors.js';
import type { AuditService } from '../audit/audit.service.js';
import { requireTenant } from '../identity/api-key.service.js';
import type { TenantPlan } from '../identity/identity.types.js';
import type { Principal, RequestOrigin } from '../identity/principal.js';
import { Session } from '../sessions/session.entity.js';
import {
  effectiveSendPolicy,
  FIELD_NAMES,
  overridesWithinPlan,
  SEND_POLICY_FIELDS,
  type SendPolicy,
  type SendPolicyPlans,
} from './send-policy.js';

/** The policy a session runs under, and how far its plan lets the tenant take it. */
export interface SendPolicyView {
  policy: SendPolicy;
  limits: SendPolicy;
  plan: TenantPlan;
}

/**
 * GetSendPolicy and SetSendPolicy: the tenant reads and tunes a session's
 * send governor within its plan. A change is audited in the same transaction
 * and announced (`onChange`) after commit so the governor dispatching the
 * session picks it up.
 */
export class SendPolicyService {
  constructor(
    private readonly plans: SendPolicyPlans,
    private readonly audit: AuditService,
    private readonly onChange: (sessionId: string) => Promise<void> | void = () => undefined,
  ) {}

  async get(em: EntityManager, principal: Principal, sessionId: string): Promise<SendPolicyView> {
    const session = await this.tenantSession(em, principal, sessionId);
    const plan = this.plans[principal.plan];
    return { policy: effectiveSendPolicy(plan, session.sendPolicy), limits: plan.limits, plan: principal.plan };
  }

  /** Fields at 0 take the plan's default; a field beyond the plan's limit is INVALID_ARGUMENT and nothing is stored. */
  async set(
    em: EntityManager,
    principal: Principal,
    sessionId: string,
    requested: SendPolicy,
    origin: RequestOrigin,
  ): Promise<SendPolicy> {
    const tenantId = requireTenant(principal);
    const plan = this.plans[principal.plan];
    const overrides = overridesWithinPlan(principal.plan, plan, requested);
    const policy = await em.transactional(async (tx) => {
      const session = await this.tenantSession(tx, principal, sessionId);
      const before = effectiveSendPolicy(plan, session.sendPolicy);
      session.sendPolicy = Object.keys(overrides).length > 0 ? { ...overrides } : null;
      const after = effectiveSendPolicy(plan, session.sendPolicy);
      this.audit.record(
        tx,
        {
          action: 'session.send_policy_changed',
          tenantId,
          targetType: 'session',
          targetId: session.id,
          details: Object.fromEntries(
            SEND_POLICY_FIELDS.filter((field) => before[field] !== after[field]).map((field) => [
              FIELD_NAMES[field],
              `${before[field]} -> ${after[field]}`,
            ]),
          ),
        },
        { principal, origin },
      );
      await tx.flush();
      return after;
    });
    await this.onChange(sessionId);
    return policy;
  }

  private async tenantSession(em: EntityManager, principal: Principal, sessionId: string): Promise<Session> {
    const session = await em.findOne(Session, { id: sessionId, tenantId: requireTenant(principal) });
    if (!session) throw DomainError.notFound('session', sessionId);
    return session;
  }
}
