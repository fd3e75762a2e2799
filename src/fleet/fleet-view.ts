import type { EntityManager } from '@mikro-orm/postgresql';
import type { FleetWorker } from '../scheduling/placement.types.js';
import { Worker } from './worker.entity.js';

/** A worker as placement sees it, before the sessions capability counts what runs on it. */
export type PlacementWorker = Omit<FleetWorker, 'assignedSessions'>;

/**
 * The fleet as the scheduler reads it: every worker that is not removed
 * (offline ones too, so "nothing fits" can say workers exist but are down),
 * with what it can run and its last load. A read-only view the fleet owns,
 * read inside the caller's transaction.
 */
export async function readPlacementFleet(em: EntityManager): Promise<PlacementWorker[]> {
  const workers = await em.find(Worker, { status: { $ne: 'REMOVED' } }, { disableIdentityMap: true });
  return workers.map((w) => ({
    id: w.id,
    name: w.name,
    status: w.status,
    schedulability: w.schedulability,
    capacity: w.capacity,
    supportedEngines: w.supportedEngines,
    labels: w.labels,
    metrics: w.metrics
      ? {
          cpuPercent: w.metrics.cpuPercent,
          freeMemoryBytes: w.metrics.freeMemoryBytes,
          totalMemoryBytes: w.metrics.totalMemoryBytes,
        }
      : null,
  }));
}
