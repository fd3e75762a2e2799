import { z } from 'zod';
import { DomainError } from '../../lib/errors.js';
import type { TenantPlan } from '../identity/identity.types.js';

/** The send governor's settings of one session (what SendPolicy carries in the API). */
export interface SendPolicy {
  /** Messages per minute through the session (a token bucket holding 10 seconds' worth). */
  perMinute: number;
  /** Messages per UTC day through the session, once warmed up. */
  perDay: number;
  /** Seconds between messages to one recipient that never wrote to this number. */
  newRecipientIntervalSeconds: number;
  /** Messages allowed at once to such a recipient before the interval applies. */
  newRecipientBurst: number;
  /** Days over which a newly linked number ramps up to `perDay`. */
  warmupDays: number;
  /** Up to this many ms of random pause after each message before the next. */
  jitterMs: number;
}

export const SEND_POLICY_FIELDS = [
  'perMinute',
  'perDay',
  'newRecipientIntervalSeconds',
  'newRecipientBurst',
  'warmupDays',
  'jitterMs',
] as const satisfies readonly (keyof SendPolicy)[];

export type SendPolicyField = (typeof SEND_POLICY_FIELDS)[number];

/**
 * Which way a field is safe. Raising a "ceiling" field sends more (the plan's
 * limit is the most it may be); lowering a "floor" field sends faster (the
 * plan's limit is the least it may be).
 */
export const FIELD_DIRECTION: Record<SendPolicyField, 'ceiling' | 'floor'> = {
  perMinute: 'ceiling',
  perDay: 'ceiling',
  newRecipientBurst: 'ceiling',
  newRecipientIntervalSeconds: 'floor',
  warmupDays: 'floor',
  jitterMs: 'floor',
};

/** The API's snake_case names, for error messages a tenant can map to the field it sent. */
export const FIELD_NAMES: Record<SendPolicyField, string> = {
  perMinute: 'per_minute',
  perDay: 'per_day',
  newRecipientIntervalSeconds: 'new_recipient_interval_seconds',
  newRecipientBurst: 'new_recipient_burst',
  warmupDays: 'warmup_days',
  jitterMs: 'jitter_ms',
};

/** A plan's defaults (what applies when the tenant set nothing) and its limits (the most permissive values allowed). */
export interface PlanSendPolicy {
  defaults: SendPolicy;
  limits: SendPolicy;
}

export type SendPolicyPlans = Record<TenantPlan, PlanSendPolicy>;

/**
 * Built-in plans. Free tenants get the safe defaults and may only make them
 * stricter; higher plans may loosen them up to their limits. Every plan keeps
 * the per-recipient interval of WhatsApp's own pace for new contacts by
 * default (about one message per 6 s) and a warm-up of at least a day.
 */
export const DEFAULT_SEND_POLICY_PLANS: SendPolicyPlans = {
  free: {
    defaults: {
      perMinute: 20,
      perDay: 1000,
      newRecipientIntervalSeconds: 6,
      newRecipientBurst: 3,
      warmupDays: 7,
      jitterMs: 2000,
    },
    limits: {
      perMinute: 20,
      perDay: 1000,
      newRecipientIntervalSeconds: 6,
      newRecipientBurst: 3,
      warmupDays: 7,
      jitterMs: 1000,
    },
  },
  pro: {
    defaults: {
      perMinute: 30,
      perDay: 5000,
      newRecipientIntervalSeconds: 6,
      newRecipientBurst: 3,
      warmupDays: 7,
      jitterMs: 1000,
    },
    limits: {
      perMinute: 60,
      perDay: 20_000,
      newRecipientIntervalSeconds: 3,
      newRecipientBurst: 5,
      warmupDays: 3,
      jitterMs: 1,
    },
  },
  enterprise: {
    defaults: {
      perMinute: 60,
      perDay: 10_000,
      newRecipientIntervalSeconds: 6,
      newRecipientBurst: 3,
      warmupDays: 7,
      jitterMs: 1000,
    },
    limits: {
      perMinute: 300,
      perDay: 100_000,
      newRecipientIntervalSeconds: 1,
      newRecipientBurst: 10,
      warmupDays: 1,
      jitterMs: 1,
    },
  },
};

/** Whether `value` is within `limit` for the field's direction. */
function withinLimit(field: SendPolicyField, value: number, limit: number): boolean {
  return FIELD_DIRECTION[field] === 'ceiling' ? value <= limit : value >= limit;
}

/**
 * The tenant's stored overrides as applied: a field absent or 0 takes the
 * plan's default, and a stored value the plan no longer allows (the plan was
 * downgraded) is clamped to the plan's limit, so a session never runs looser
 * than its plan.
 */
export function effectiveSendPolicy(plan: PlanSendPolicy, stored: Partial<Record<string, number>> | null): SendPolicy {
  const policy = { ...plan.defaults };
  for (const field of SEND_POLICY_FIELDS) {
    const value = stored?.[field];
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) continue;
    policy[field] = withinLimit(field, value, plan.limits[field]) ? value : plan.limits[field];
  }
  return policy;
}

/**
 * What SetSendPolicy stores: the non-zero fields, each checked against the
 * plan's limit. A value beyond it is INVALID_ARGUMENT naming the field and the
 * limit (the request is wrong for this plan whatever the session's state, so
 * not FAILED_PRECONDITION), and nothing is stored.
 */
export function overridesWithinPlan(
  planName: TenantPlan,
  plan: PlanSendPolicy,
  requested: SendPolicy,
): Partial<SendPolicy> {
  const overrides: Partial<SendPolicy> = {};
  for (const field of SEND_POLICY_FIELDS) {
    const value = requested[field];
    if (value === 0) continue;
    const limit = plan.limits[field];
    if (!withinLimit(field, value, limit)) {
      const bound = FIELD_DIRECTION[field] === 'ceiling' ? 'at most' : 'at least';
      throw new DomainError(
        'INVALID_ARGUMENT',
        `policy.${FIELD_NAMES[field]}: the ${planName} plan allows ${bound} ${limit} (got ${value}); 0 keeps the plan's default of ${plan.defaults[field]}`,
        { details: { field: `policy.${FIELD_NAMES[field]}`, limit, plan: planName } },
      );
    }
    overrides[field] = value;
  }
  return overrides;
}

const policySchema = z.object({
  perMinute: z.number().int().min(1).max(6000),
  perDay: z.number().int().min(1).max(1_000_000),
  newRecipientIntervalSeconds: z.number().int().min(1).max(3600),
  newRecipientBurst: z.number().int().min(1).max(100),
  warmupDays: z.number().int().min(1).max(60),
  jitterMs: z.number().int().min(1).max(60_000),
});

const planOverrideSchema = z
  .object({ defaults: policySchema.partial().strict(), limits: policySchema.partial().strict() })
  .partial()
  .strict();

/**
 * SEND_POLICY_PLANS: JSON that overrides fields of the built-in plans, e.g.
 * {"pro":{"limits":{"perDay":50000}}}. Empty keeps the built-in table. Each
 * plan's defaults must lie within its limits.
 */
export const sendPolicyPlansVariable = z
  .string()
  .optional()
  .transform((value, ctx): SendPolicyPlans => {
    if (value === undefined) return DEFAULT_SEND_POLICY_PLANS;
    let json: unknown;
    try {
      json = JSON.parse(value);
    } catch {
      ctx.addIssue({ code: 'custom', message: 'expected JSON, e.g. {"pro":{"limits":{"perDay":50000}}}' });
      return z.NEVER;
    }
    const parsed = z
      .object({ free: planOverrideSchema, pro: planOverrideSchema, enterprise: planOverrideSchema })
      .partial()
      .strict()
      .safeParse(json);
    if (!parsed.success) {
      ctx.addIssue({ code: 'custom', message: parsed.error.issues.map(describeIssue).join('; ') });
      return z.NEVER;
    }
    const plans = structuredClone(DEFAULT_SEND_POLICY_PLANS);
    for (const [name, override] of Object.entries(parsed.data) as [TenantPlan, z.infer<typeof planOverrideSchema>][]) {
      Object.assign(plans[name].defaults, override.defaults);
      Object.assign(plans[name].limits, override.limits);
    }
    for (const name of Object.keys(plans) as TenantPlan[]) {
      for (const field of SEND_POLICY_FIELDS) {
        const { defaults, limits } = plans[name];
        if (!withinLimit(field, defaults[field], limits[field])) {
          ctx.addIssue({
            code: 'custom',
            message: `${name}.defaults.${field} (${defaults[field]}) is outside ${name}.limits.${field} (${limits[field]})`,
          });
        }
      }
    }
    return plans;
  });

function describeIssue(issue: z.core.$ZodIssue): string {
  return `${issue.path.join('.')}: ${issue.message}`;
}
