import { randomUUID } from 'node:crypto';
import type { DispatchedMessage } from './fleet.types.js';
import type { LocalStreams } from './worker-connection.js';

/**
 * DispatchMessages frames down the agent streams this replica holds: the
 * fleet's side of messaging's DispatchChannel port. Frames are not relayed
 * between replicas: the dispatcher runs where the worker's stream is.
 */
export class WorkerDispatch {
  constructor(private readonly streams: LocalStreams) {}

  send(workerId: string, messages: readonly DispatchedMessage[]): boolean {
    const connection = this.streams.get(workerId);
    if (connection?.state !== 'live') return false;
    connection.send({ correlationId: randomUUID(), kind: 'dispatchMessages', messages });
    return true;
  }

  holds(workerId: string): boolean {
    return this.streams.get(workerId)?.state === 'live';
  }

  localWorkers(): string[] {
    return [...this.streams.values()].filter((c) => c.state === 'live').map((c) => c.workerId);
  }
}
