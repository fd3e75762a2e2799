import { DomainError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { Resources } from '../platform/resources.js';
import type { FleetChanges } from './fleet-changes.js';
import { summariseFleet, type FleetSummary } from './fleet-summary.js';
import type { WorkerQuery } from './fleet.types.js';
import type { LocalStreams } from './worker-connection.js';
import type { WorkerMetricsRollup } from './worker-metrics-rollup.entity.js';
import type { Worker } from './worker.entity.js';
import type { WorkerRepository } from './worker.repository.js';
import type { AdminAction } from './worker.state.js';

/** An operator's change to a worker, and who made it. */
export interface AdminActionInput {
  workerId: string;
  action: AdminAction;
  reason: string;
  actorUserId: string | null;
}

/** Operators' view of the fleet and their actions on workers (rules in worker.state.ts). */
export class WorkerAdmin {
  private readonly log: Logger;

  constructor(
    private readonly resources: Resources,
    private readonly streams: LocalStreams,
    private readonly changes: FleetChanges,
  ) {
    this.log = resources.logger.child({ component: 'fleet' });
  }

  async listWorkers(repository: WorkerRepository, query: WorkerQuery): Promise<Worker[]> {
    return repository.list(query);
  }

  async getWorker(repository: WorkerRepository, id: string): Promise<Worker> {
    const worker = await repository.findById(id);
    if (!worker) throw DomainError.notFound('worker', id);
    return worker;
  }

  async summary(repository: WorkerRepository): Promise<FleetSummary> {
    return summariseFleet(await repository.findAll());
  }

  /** The worker's per-minute metrics for the last `minutes` minutes. */
  async metricsHistory(
    repository: WorkerRepository,
    workerId: string,
    minutes: number,
  ): Promise<WorkerMetricsRollup[]> {
    const since = new Date(this.resources.clock.now().getTime() - minutes * 60_000);
    return repository.metricsHistory(workerId, since);
  }

  /**
   * Removing the fleet's last worker leaves every session with nowhere to
   * run: refused unless the operator says `force`, with what it would mean.
   */
  async assertNotLastWorker(repository: WorkerRepository, workerId: string, force: boolean): Promise<void> {
    if (force) return;
    const others = (await repository.findAll()).filter((w) => w.id !== workerId && w.status !== 'REMOVED');
    if (others.length > 0) return;
    const sessions = await repository.assignedSessionCount(workerId);
    throw new DomainError(
      'FAILED_PRECONDITION',
      `this is the fleet's last worker: removed, it leaves no worker for any session (${sessions} run on it now; ` +
        'every session would wait PENDING until a worker joins). Set force to remove it anyway.',
      { details: { sessions } },
    );
  }

  /** Cordon, uncordon, drain or remove a worker; a removed worker's stream here ends at once. */
  async applyAdminAction(repository: WorkerRepository, input: AdminActionInput): Promise<Worker> {
    const { worker, event } = await repository.applyAdminAction({ ...input, now: this.resources.clock.now() });
    if (!event) return worker;
    this.log.info(
      { workerId: worker.id, worker: worker.name, event: event.kind, reason: event.reason },
      'worker changed by operator',
    );
    if (event.kind === 'REMOVED') {
      this.streams
        .get(worker.id)
        ?.terminate(
          'removed by an operator',
          new DomainError('PERMISSION_DENIED', 'this worker was removed from the fleet'),
          'clean',
        );
    }
    await this.changes.announce(event);
    return worker;
  }
}
