import { z } from 'zod';

/** The send pipeline's limits and timing (docs/messaging.md), compiled once from the environment. */
export interface MessagingConfig {
  /** SendText is refused (RESOURCE_EXHAUSTED) while the session has this many messages QUEUED. */
  readonly queuePerSession: number;
  /** ...or while its worker has more than this many dispatched and not yet confirmed. */
  readonly inFlightPerWorker: number;
  /** A dispatched message not confirmed within this long is dispatched again (same id). */
  readonly dispatchTimeoutMs: number;
  /** After this many dispatches without a confirmation a message ends FAILED. */
  readonly dispatchMaxAttempts: number;
  /** How often each replica sweeps its workers' queues (lost wake-ups, held and overdue messages). */
  readonly sweepIntervalMs: number;
}

const whole = (fallback: number, min: number, max: number) =>
  z.coerce
    .number({ error: 'expected a number' })
    .int('expected a whole number')
    .min(min, `expected at least ${min}`)
    .max(max, `expected at most ${max}`)
    .default(fallback);

/** The variables, spread into the control plane's schema (src/config.ts); documented in .env.example. */
export const messagingEnv = {
  MESSAGE_QUEUE_PER_SESSION: whole(1000, 1, 1_000_000),
  MESSAGE_IN_FLIGHT_PER_WORKER: whole(10_000, 1, 10_000_000),
  MESSAGE_DISPATCH_TIMEOUT_MS: whole(60_000, 100, 24 * 3_600_000),
  MESSAGE_DISPATCH_MAX_ATTEMPTS: whole(5, 1, 100),
  MESSAGE_SWEEP_INTERVAL_MS: whole(1000, 50, 3_600_000),
};

type MessagingEnv = { [K in keyof typeof messagingEnv]: z.infer<(typeof messagingEnv)[K]> };

export function messagingConfig(e: MessagingEnv): MessagingConfig {
  return {
    queuePerSession: e.MESSAGE_QUEUE_PER_SESSION,
    inFlightPerWorker: e.MESSAGE_IN_FLIGHT_PER_WORKER,
    dispatchTimeoutMs: e.MESSAGE_DISPATCH_TIMEOUT_MS,
    dispatchMaxAttempts: e.MESSAGE_DISPATCH_MAX_ATTEMPTS,
    sweepIntervalMs: e.MESSAGE_SWEEP_INTERVAL_MS,
  };
}
