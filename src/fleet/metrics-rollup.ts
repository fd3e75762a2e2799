import type { WorkerMetrics } from './worker.entity.js';

/** One minute of one worker's heartbeats, folded as they arrive. */
export interface MetricsRollup {
  workerId: string;
  minute: Date;
  samples: number;
  cpuPercentAvg: number;
  cpuPercentMax: number;
  rssBytesMax: number;
  memoryPercentAvg: number;
  eventLoopLagMsMax: number;
  sessionCountMax: number;
}

/** How long rollups are kept: GetWorker shows at most this much history. */
export const ROLLUP_RETENTION_MS = 24 * 60 * 60 * 1000;
const MINUTE_MS = 60_000;

export function minuteOf(at: Date): Date {
  return new Date(Math.floor(at.getTime() / MINUTE_MS) * MINUTE_MS);
}

function memoryPercent(metrics: WorkerMetrics): number {
  if (metrics.totalMemoryBytes <= 0) return 0;
  return (100 * (metrics.totalMemoryBytes - metrics.freeMemoryBytes)) / metrics.totalMemoryBytes;
}

/** Folds one heartbeat into its minute's rollup (a fresh one when the minute changed). */
export function foldSample(
  current: MetricsRollup | undefined,
  workerId: string,
  at: Date,
  metrics: WorkerMetrics,
): MetricsRollup {
  const minute = minuteOf(at);
  const sample: MetricsRollup = {
    workerId,
    minute,
    samples: 1,
    cpuPercentAvg: metrics.cpuPercent,
    cpuPercentMax: metrics.cpuPercent,
    rssBytesMax: metrics.rssBytes,
    memoryPercentAvg: memoryPercent(metrics),
    eventLoopLagMsMax: metrics.eventLoopLagMs,
    sessionCountMax: metrics.sessionCount,
  };
  if (current?.minute.getTime() !== minute.getTime()) return sample;
  return mergeRollups(current, sample);
}

/** Combines two partial rollups of the same minute (what the database upsert does too). */
export function mergeRollups(a: MetricsRollup, b: MetricsRollup): MetricsRollup {
  const samples = a.samples + b.samples;
  const weighted = (x: number, y: number) => (x * a.samples + y * b.samples) / samples;
  return {
    workerId: a.workerId,
    minute: a.minute,
    samples,
    cpuPercentAvg: weighted(a.cpuPercentAvg, b.cpuPercentAvg),
    cpuPercentMax: Math.max(a.cpuPercentMax, b.cpuPercentMax),
    rssBytesMax: Math.max(a.rssBytesMax, b.rssBytesMax),
    memoryPercentAvg: weighted(a.memoryPercentAvg, b.memoryPercentAvg),
    eventLoopLagMsMax: Math.max(a.eventLoopLagMsMax, b.eventLoopLagMsMax),
    sessionCountMax: Math.max(a.sessionCountMax, b.sessionCountMax),
  };
}
