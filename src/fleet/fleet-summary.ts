import type { Schedulability, WorkerMetrics, WorkerStatus } from './worker.entity.js';

/** The fleet at a glance, for operators and (later) alerts. */
export interface FleetSummary {
  workersByStatus: Record<string, number>;
  onlineBySchedulability: Record<string, number>;
  totalCapacity: number;
  freeCapacity: number;
  cpuPercentP50: number;
  cpuPercentP95: number;
  memoryPercentP50: number;
  memoryPercentP95: number;
}

/** The fields the summary reads. */
export interface SummarisedWorker {
  status: WorkerStatus;
  schedulability: Schedulability;
  capacity: number;
  metrics: WorkerMetrics | null;
}

/**
 * Counts and load percentiles over the fleet (pure). Capacity counts only
 * workers that can take new work (online and not cordoned or draining).
 */
export function summariseFleet(workers: readonly SummarisedWorker[]): FleetSummary {
  const workersByStatus: Record<string, number> = { ONLINE: 0, OFFLINE: 0, FAILED: 0, REMOVED: 0 };
  const onlineBySchedulability: Record<string, number> = { ACTIVE: 0, CORDONED: 0, DRAINING: 0 };
  let totalCapacity = 0;
  let freeCapacity = 0;
  const cpu: number[] = [];
  const memory: number[] = [];
  for (const worker of workers) {
    workersByStatus[worker.status] = (workersByStatus[worker.status] ?? 0) + 1;
    if (worker.status !== 'ONLINE') continue;
    onlineBySchedulability[worker.schedulability] = (onlineBySchedulability[worker.schedulability] ?? 0) + 1;
    if (worker.schedulability === 'ACTIVE') {
      totalCapacity += worker.capacity;
      freeCapacity += Math.max(0, worker.capacity - (worker.metrics?.sessionCount ?? 0));
    }
    if (worker.metrics) {
      cpu.push(worker.metrics.cpuPercent);
      const total = worker.metrics.totalMemoryBytes;
      if (total > 0) memory.push(((total - worker.metrics.freeMemoryBytes) / total) * 100);
    }
  }
  return {
    workersByStatus,
    onlineBySchedulability,
    totalCapacity,
    freeCapacity,
    cpuPercentP50: percentile(cpu, 50),
    cpuPercentP95: percentile(cpu, 95),
    memoryPercentP50: percentile(memory, 50),
    memoryPercentP95: percentile(memory, 95),
  };
}

/** Nearest-rank percentile; 0 for no values. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return Math.round((sorted[rank - 1] ?? 0) * 100) / 100;
}
