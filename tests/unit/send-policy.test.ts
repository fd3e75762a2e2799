import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import {
  DEFAULT_SEND_POLICY_PLANS,
  effectiveSendPolicy,
  overridesWithinPlan,
  SEND_POLICY_FIELDS,
  type SendPolicy,
} from '../../src/messaging/send-policy.js';

const ZERO: SendPolicy = {
  perMinute: 0,
  perDay: 0,
  newRecipientIntervalSeconds: 0,
  newRecipientBurst: 0,
  warmupDays: 0,
  jitterMs: 0,
};

describe('send policy plans', () => {
  it('keep every default within its own plan limit, and higher plans never stricter in their limits', () => {
    const plans = DEFAULT_SEND_POLICY_PLANS;
    for (const plan of Object.values(plans))
      expect(overridesWithinPlan('free', plan, plan.defaults)).toEqual(plan.defaults);
    for (const field of ['perMinute', 'perDay', 'newRecipientBurst'] as const) {
      expect(plans.pro.limits[field]).toBeGreaterThanOrEqual(plans.free.limits[field]);
      expect(plans.enterprise.limits[field]).toBeGreaterThanOrEqual(plans.pro.limits[field]);
    }
    for (const field of ['newRecipientIntervalSeconds', 'warmupDays', 'jitterMs'] as const) {
      expect(plans.pro.limits[field]).toBeLessThanOrEqual(plans.free.limits[field]);
      expect(plans.enterprise.limits[field]).toBeLessThanOrEqual(plans.pro.limits[field]);
    }
  });

  it('apply the plan default for a field left at 0 or never stored', () => {
    const free = DEFAULT_SEND_POLICY_PLANS.free;
    expect(effectiveSendPolicy(free, null)).toEqual(free.defaults);
    expect(effectiveSendPolicy(free, { perMinute: 0, perDay: 300 })).toEqual({ ...free.defaults, perDay: 300 });
    expect(overridesWithinPlan('free', free, ZERO)).toEqual({});
  });

  it('refuse a value beyond the limit in either direction, naming the field and the limit', () => {
    const free = DEFAULT_SEND_POLICY_PLANS.free;
    expect(() => overridesWithinPlan('free', free, { ...ZERO, perMinute: 21 })).toThrow(
      /policy\.per_minute: the free plan allows at most 20 \(got 21\)/,
    );
    expect(() => overridesWithinPlan('free', free, { ...ZERO, warmupDays: 2 })).toThrow(
      /policy\.warmup_days: the free plan allows at least 7 \(got 2\)/,
    );
    expect(() => overridesWithinPlan('free', free, { ...ZERO, jitterMs: 999 })).toThrow(/policy\.jitter_ms/);
    expect(overridesWithinPlan('free', free, { ...ZERO, perMinute: 5, warmupDays: 30 })).toEqual({
      perMinute: 5,
      warmupDays: 30,
    });
  });

  it('clamp a stored value the plan no longer allows (after a downgrade) to the limit', () => {
    const stored = { perMinute: 300, newRecipientIntervalSeconds: 1 };
    expect(effectiveSendPolicy(DEFAULT_SEND_POLICY_PLANS.free, stored)).toMatchObject({
      perMinute: 20,
      newRecipientIntervalSeconds: 6,
    });
  });

  it('are configured by SEND_POLICY_PLANS over the built-in table, and refused when inconsistent', () => {
    expect(loadConfig({}).sendGovernor).toEqual({ enabled: true, plans: DEFAULT_SEND_POLICY_PLANS });
    expect(loadConfig({ SEND_GOVERNOR: 'off' }).sendGovernor.enabled).toBe(false);
    const config = loadConfig({ SEND_POLICY_PLANS: '{"pro":{"limits":{"perDay":50000},"defaults":{"perDay":8000}}}' });
    expect(config.sendGovernor.plans.pro.limits.perDay).toBe(50_000);
    expect(config.sendGovernor.plans.pro.defaults.perDay).toBe(8000);
    expect(config.sendGovernor.plans.pro.limits.perMinute).toBe(DEFAULT_SEND_POLICY_PLANS.pro.limits.perMinute);
    expect(DEFAULT_SEND_POLICY_PLANS.pro.limits.perDay).toBe(20_000); // the built-in table is not changed
    expect(() => loadConfig({ SEND_POLICY_PLANS: 'not json' })).toThrow(/SEND_POLICY_PLANS: expected JSON/);
    expect(() => loadConfig({ SEND_POLICY_PLANS: '{"gold":{}}' })).toThrow(/SEND_POLICY_PLANS/);
    expect(() => loadConfig({ SEND_POLICY_PLANS: '{"free":{"limits":{"perDy":5}}}' })).toThrow(/SEND_POLICY_PLANS/);
    expect(() => loadConfig({ SEND_POLICY_PLANS: '{"free":{"defaults":{"perDay":5000}}}' })).toThrow(
      /free\.defaults\.perDay \(5000\) is outside free\.limits\.perDay \(1000\)/,
    );
  });

  it('cover every field of the API', () => {
    expect([...SEND_POLICY_FIELDS].sort()).toEqual(Object.keys(ZERO).sort());
  });
});
