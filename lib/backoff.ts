import type { Random } from './random.js';

/** How reconnect delays grow; the agent's reconnects and the developer setup's agent restarts. */
export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
  multiplier: number;
}

export const defaultBackoff: BackoffPolicy = { initialMs: 500, maxMs: 30_000, multiplier: 2 };

/**
 * Delay before reconnect attempt `attempt` (0-based): exponential growth,
 * capped, with "equal jitter" (half fixed, half random) so a fleet that lost
 * its control plane at once does not come back in lockstep, yet no agent
 * retries in a tight loop. `random` is the injected jitter source,
 * so a test can pin the delays.
 */
export function backoffDelay(attempt: number, policy: BackoffPolicy, random: Random): number {
  const ceiling = Math.min(policy.maxMs, policy.initialMs * policy.multiplier ** Math.max(0, attempt));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
