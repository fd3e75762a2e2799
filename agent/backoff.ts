/** How reconnect delays grow; compiled once from agent options. */
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
 * retries in a tight loop.
 */
export function backoffDelay(attempt: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxMs, policy.initialMs * policy.multiplier ** Math.max(0, attempt));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
