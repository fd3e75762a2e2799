/**
 * The mass-failure guard (pure). When a large share of the fleet fails at
 * once, the likelier culprit is the control plane or the network between it
 * and the workers, not the workers: reassigning all their work would stampede
 * the survivors and, if the workers are in fact alive, run sessions twice.
 * So failures are still declared, but automatic reassignment is held until an
 * operator confirms or the failed workers come back.
 */

/** When the guard trips; compiled from configuration. */
export interface FailureGuardPolicy {
  /** Trip when more than this share of the fleet fails within one window. */
  maxFailedShare: number;
  /** ...and at least this many workers failed (a fleet of three losing one is not a mass failure). */
  minFailures: number;
  /** The window: one lease period. */
  windowMs: number;
}

/** The hold as stored and shown to operators. */
export interface ReassignmentHold {
  active: boolean;
  since: Date | null;
  reason: string;
  failedWorkers: number;
  fleetSize: number;
  /** When an operator last released it; failures before this do not trip it again. */
  releasedAt: Date | null;
}

export const NO_HOLD: ReassignmentHold = {
  active: false,
  since: null,
  reason: '',
  failedWorkers: 0,
  fleetSize: 0,
  releasedAt: null,
};

/** What the sweeper read from the fleet for one judgement. */
export interface FailureReading {
  /** Workers that failed within the window (and after the last release). */
  recentFailures: number;
  /** Workers ONLINE now. */
  online: number;
  /** Workers still FAILED among those that failed since the hold began (one window before it). */
  stillFailedSinceHold: number;
}

export type FailureJudgement =
  { action: 'none' } | { action: 'trip'; hold: ReassignmentHold } | { action: 'clear'; reason: string };

/**
 * Decides whether to trip or clear the hold. The fleet size is what was
 * online at the start of the window: the workers online now plus the ones
 * that failed within it.
 */
export function judgeFailures(
  current: ReassignmentHold,
  reading: FailureReading,
  policy: FailureGuardPolicy,
  now: Date,
): FailureJudgement {
  const fleetSize = reading.online + reading.recentFailures;
  const overThreshold = (failed: number) =>
    failed >= policy.minFailures && fleetSize > 0 && failed > policy.maxFailedShare * fleetSize;
  if (!current.active) {
    if (!overThreshold(reading.recentFailures)) return { action: 'none' };
    const seconds = Math.round(policy.windowMs / 1000);
    return {
      action: 'trip',
      hold: {
        active: true,
        since: now,
        reason:
          `${reading.recentFailures} of ${fleetSize} workers failed within ${seconds}s ` +
          `(more than ${Math.round(policy.maxFailedShare * 100)}%): suspecting the control plane or the network`,
        failedWorkers: reading.recentFailures,
        fleetSize,
        releasedAt: current.releasedAt,
      },
    };
  }
  if (overThreshold(reading.recentFailures) || overThreshold(reading.stillFailedSinceHold)) return { action: 'none' };
  return {
    action: 'clear',
    reason: `the failed workers came back (${reading.stillFailedSinceHold} still failed of ${fleetSize})`,
  };
}
