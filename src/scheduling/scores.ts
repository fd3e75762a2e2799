import { matchesLabels } from './label-selector.js';
import type { LabelAffinity, WorkerLoad } from './placement.types.js';

/** The label naming a worker's failure domain; a tenant's sessions are spread across its values. */
export const ZONE_LABEL = 'zone';

/**
 * How much each score counts. Free slots dominate: any other score can pull
 * sessions towards a worker only until its free share is lower by (that
 * score's weight / 0.5) x (its advantage), so load stays even across the
 * fleet while headroom, spread and affinity decide among similar workers.
 * Affinity counts only for requests that state one.
 */
export const SCORE_WEIGHTS = {
  freeSlots: 0.5,
  cpuHeadroom: 0.1,
  memoryHeadroom: 0.1,
  tenantSpread: 0.15,
  affinity: 0.15,
} as const;

/** Share of slots still free once the session is added: spreads load evenly in proportion to capacity. */
export function freeSlotsScore(capacity: number, assignedSessions: number): number {
  return clamp01(1 - (assignedSessions + 1) / capacity);
}

/** CPU left on the agent's event loop; neutral without a reading. */
export function cpuHeadroomScore(metrics: WorkerLoad | null): number {
  return metrics ? clamp01(1 - metrics.cpuPercent / 100) : 0.5;
}

/** Share of the host's memory free; neutral without a reading. */
export function memoryHeadroomScore(metrics: WorkerLoad | null): number {
  return metrics && metrics.totalMemoryBytes > 0 ? clamp01(metrics.freeMemoryBytes / metrics.totalMemoryBytes) : 0.5;
}

/**
 * Half for the worker, half for its zone: 0.5 / (1 + how many of the
 * tenant's sessions there are above its fair share there). The fair share
 * is the tenant's sessions times the place's share of the capacity that
 * could take the session, i.e. where even load would put them. So a small
 * tenant (fair shares well under one session) gets its sessions on
 * different workers and zones, which is what protects it from one failure,
 * while a large tenant is only kept from piling up beyond its share. Counting
 * sessions without the fair share (as a plain anti-affinity would) fights the
 * free-slots score: every tenant then wants as many sessions in a small zone
 * as in a big one, and the small zone's workers fill up first.
 */
export function tenantSpreadScore(onWorker: number, fairOnWorker: number, inZone: number, fairInZone: number): number {
  return 0.5 / (1 + Math.max(0, onWorker - fairOnWorker)) + 0.5 / (1 + Math.max(0, inZone - fairInZone));
}

/**
 * A worker's zone: its ZONE_LABEL, or '' without one. Workers without a
 * zone count as one zone (they may share a fate for all we know); a "neutral"
 * score for them instead would pull every large tenant towards them.
 */
export function zoneOf(labels: Readonly<Record<string, string>>): string {
  return Object.hasOwn(labels, ZONE_LABEL) ? (labels[ZONE_LABEL] ?? '') : '';
}

/** The matched share of the affinities' weights, mapped from [-1, 1] to [0, 1]; null without affinities. */
export function affinityScore(
  labels: Readonly<Record<string, string>>,
  affinities: readonly LabelAffinity[] | undefined,
): number | null {
  if (!affinities || affinities.length === 0) return null;
  let matched = 0;
  let total = 0;
  for (const { requirement, weight } of affinities) {
    total += Math.abs(weight);
    if (matchesLabels(labels, [requirement])) matched += weight;
  }
  return (matched / total + 1) / 2;
}

export function clamp01(x: number): number {
  return Math.min(1, Math.max(0, x));
}
