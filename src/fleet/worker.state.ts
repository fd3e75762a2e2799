import { DomainError } from '../../lib/errors.js';
import type { WorkerEventKind } from './worker-event.entity.js';
import type { Schedulability, WorkerStatus } from './worker.entity.js';

/** An operator's action on one worker. */
export type AdminAction = 'cordon' | 'uncordon' | 'drain' | 'remove';

/** The part of a worker the rules look at. */
export interface WorkerStanding {
  status: WorkerStatus;
  schedulability: Schedulability;
  /** Sessions it still runs (from its last heartbeat). */
  sessionCount: number;
}

/** What an action changes, and the event that records it; `event` undefined means nothing changes. */
export interface ActionPlan {
  status: WorkerStatus;
  schedulability: Schedulability;
  event: WorkerEventKind | undefined;
}

/**
 * The rules for operators' actions, in one place (pure):
 * - a REMOVED worker accepts no action but a repeated remove;
 * - cordon, drain and uncordon are idempotent (repeating changes nothing);
 * - remove only takes an OFFLINE or FAILED worker, or an ONLINE one that is
 *   DRAINING and holds no sessions (drained): removing live work would lose it.
 */
export function planAdminAction(worker: WorkerStanding, action: AdminAction): ActionPlan {
  const unchanged: ActionPlan = { status: worker.status, schedulability: worker.schedulability, event: undefined };
  if (worker.status === 'REMOVED') {
    if (action === 'remove') return unchanged;
    throw new DomainError('FAILED_PRECONDITION', 'the worker was removed; enrol it again with a join token');
  }
  switch (action) {
    case 'cordon':
      return worker.schedulability === 'CORDONED'
        ? unchanged
        : { ...unchanged, schedulability: 'CORDONED', event: 'CORDONED' };
    case 'drain':
      return worker.schedulability === 'DRAINING'
        ? unchanged
        : { ...unchanged, schedulability: 'DRAINING', event: 'DRAINING' };
    case 'uncordon':
      return worker.schedulability === 'ACTIVE'
        ? unchanged
        : { ...unchanged, schedulability: 'ACTIVE', event: 'UNCORDONED' };
    case 'remove': {
      const drained = worker.schedulability === 'DRAINING' && worker.sessionCount === 0;
      if (worker.status === 'ONLINE' && !drained) {
        throw new DomainError(
          'FAILED_PRECONDITION',
          'only offline, failed or drained workers can be removed: drain it first and wait until it holds no sessions',
        );
      }
      return { ...unchanged, status: 'REMOVED', event: 'REMOVED' };
    }
  }
}

/** Whether new work may be placed on a worker. */
export function isSchedulable(worker: Pick<WorkerStanding, 'status' | 'schedulability'>): boolean {
  return worker.status === 'ONLINE' && worker.schedulability === 'ACTIVE';
}
