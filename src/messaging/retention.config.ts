import { z } from 'zod';
import type { TenantPlan } from '../identity/identity.types.js';

const MINUTE = 60_000;

const days = (fallback: number) =>
  z.coerce
    .number({ error: 'expected a number of days' })
    .int('expected a whole number of days')
    .min(1, 'expected at least 1 day')
    .max(36_500, 'expected at most 36500 days')
    .default(fallback);

const milliseconds = (fallback: number, min: number) =>
  z.coerce
    .number({ error: 'expected a number of milliseconds' })
    .int('expected a whole number of milliseconds')
    .min(min, `expected at least ${min} ms`)
    .default(fallback);

/**
 * The history and event-stream variables, merged into the one schema of
 * src/config.ts (so a bad value is reported with all the others).
 */
export const HISTORY_ENV = {
  MESSAGE_RETENTION_DAYS_FREE: days(30),
  MESSAGE_RETENTION_DAYS_PRO: days(180),
  MESSAGE_RETENTION_DAYS_ENTERPRISE: days(365),
  EVENT_RETENTION_DAYS: days(7),
  RETENTION_PURGE_INTERVAL_MS: milliseconds(60 * MINUTE, 1000),
  RETENTION_PURGE_BATCH: z.coerce.number().int().min(1).max(100_000).default(1000),
  EVENT_STREAM_POLL_INTERVAL_MS: milliseconds(5000, 50),
};

/** How long history is kept and how the event stream follows the log. */
export interface HistoryConfig {
  /** Messages (and chats without newer ones) are purged after this many days, by the tenant's plan. */
  readonly messageRetentionDays: Record<TenantPlan, number>;
  /** Events are purged after this many days. */
  readonly eventRetentionDays: number;
  readonly purgeIntervalMs: number;
  /** Rows deleted per statement, so a purge never holds long locks. */
  readonly purgeBatch: number;
  /** A caught-up event stream reads the log this often even without an announcement. */
  readonly streamPollIntervalMs: number;
}

export function historyConfig(e: {
  [K in keyof typeof HISTORY_ENV]: z.infer<(typeof HISTORY_ENV)[K]>;
}): HistoryConfig {
  return {
    messageRetentionDays: {
      free: e.MESSAGE_RETENTION_DAYS_FREE,
      pro: e.MESSAGE_RETENTION_DAYS_PRO,
      enterprise: e.MESSAGE_RETENTION_DAYS_ENTERPRISE,
    },
    eventRetentionDays: e.EVENT_RETENTION_DAYS,
    purgeIntervalMs: e.RETENTION_PURGE_INTERVAL_MS,
    purgeBatch: e.RETENTION_PURGE_BATCH,
    streamPollIntervalMs: e.EVENT_STREAM_POLL_INTERVAL_MS,
  };
}
