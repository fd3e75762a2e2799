import { AsyncQueue } from '../platform/async-queue.js';
import { type DomainError } from '../../lib/errors.js';
import type { ControlEnvelope } from './fleet.types.js';

/**
 * Where a stream is in its life. `open` until the Hello is accepted,
 * `live` while the lease is held, `closing` once an end was decided (lease
 * lost, shutdown, agent gone) and `closed` when the worker was marked offline.
 */
export type ConnectionState = 'open' | 'live' | 'closing' | 'closed';

/** The reason recorded when an agent ended its stream itself (said goodbye): it stopped its work first. */
export const CLEAN_CLOSE_REASON = 'stream closed by agent';

/** How a stream ended, which decides the worker's status (see FleetService.disconnect). */
export type DisconnectOutcome = 'clean' | 'lost' | 'expired' | 'rebalance';

/**
 * One agent stream on this replica: the outbound queue the transport drains,
 * and the lease bookkeeping the fleet service updates.
 */
export class WorkerConnection {
  readonly outbound = new AsyncQueue<ControlEnvelope>();
  state: ConnectionState = 'open';
  workerId = '';
  workerName = '';
  instanceId = '';
  /** Monotonic time of the last successful lease renewal. */
  lastRenewalMs = 0;
  /** Monotonic time after which the stream is ended to rebalance (connection age limit). */
  endAtMs = Infinity;
  /** Why the stream is ending, once that is decided. */
  endReason: string | undefined;
  endOutcome: DisconnectOutcome | undefined;
  /** Commands and requests sent on this stream that wait for an answer (correlation ids). */
  readonly awaiting = new Set<string>();
  /** Set once the agent's own draining (SIGTERM) was recorded, so it is recorded once per stream. */
  drainRecorded = false;

  constructor(
    readonly streamId: string,
    readonly peer: string,
  ) {}

  /** A method, not a field read, because the state changes across awaits. */
  isClosed(): boolean {
    return this.state === 'closed';
  }

  send(envelope: ControlEnvelope): void {
    this.outbound.push(envelope);
  }

  /** Ends the stream from the control plane's side with an error the agent will see. */
  terminate(reason: string, error: DomainError, outcome: DisconnectOutcome = 'lost'): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    this.state = 'closing';
    this.endReason = reason;
    this.endOutcome = outcome;
    this.outbound.close(error);
  }
}

/** The agent streams this replica holds, by worker id (one live stream per worker). */
export class LocalStreams {
  private readonly byWorker = new Map<string, WorkerConnection>();

  get(workerId: string): WorkerConnection | undefined {
    return this.byWorker.get(workerId);
  }

  has(workerId: string): boolean {
    return this.byWorker.has(workerId);
  }

  /** Records the worker's live stream; returns the one it supersedes, if any. */
  register(connection: WorkerConnection): WorkerConnection | undefined {
    const previous = this.byWorker.get(connection.workerId);
    this.byWorker.set(connection.workerId, connection);
    return previous === connection ? undefined : previous;
  }

  /** Forgets the stream, unless a newer one of the worker took its place. */
  unregister(connection: WorkerConnection): void {
    if (this.byWorker.get(connection.workerId) === connection) this.byWorker.delete(connection.workerId);
  }

  values(): IterableIterator<WorkerConnection> {
    return this.byWorker.values();
  }

  get size(): number {
    return this.byWorker.size;
  }
}
