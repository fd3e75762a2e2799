import type { Logger } from '../../lib/logger.js';
import type { Resources } from '../platform/resources.js';
import { WorkerEvent } from './worker-event.entity.js';
import { Worker } from './worker.entity.js';

const CHANGES_CHANNEL = 'fleet:changes';

/** A committed change to a worker, as watchers receive it. */
export interface WorkerChange {
  worker: Worker;
  event: WorkerEvent;
}

/**
 * Fans committed worker changes out: to the capability that acts on them
 * (`onLocalChange`, once, on the replica that wrote the change) and to every
 * replica's watchers (WatchWorkers) through the coordination store.
 */
export class FleetChanges {
  private readonly watchers = new Set<(change: WorkerChange) => void>();
  private unsubscribe: (() => Promise<void>) | undefined;
  private readonly log: Logger;

  constructor(
    private readonly resources: Resources,
    /** Acts on a change this replica committed (the sessions capability: move sessions, place more). */
    private readonly onLocalChange: (event: WorkerEvent) => void,
  ) {
    this.log = resources.logger.child({ component: 'fleet-changes' });
  }

  async start(): Promise<void> {
    this.unsubscribe = await this.resources.store.subscribe(CHANGES_CHANNEL, (message) => {
      void this.deliver(message);
    });
  }

  async stop(): Promise<void> {
    await this.unsubscribe?.();
  }

  /** Tells the local listener and every replica's watchers; the change itself is already committed. */
  async announce(event: WorkerEvent): Promise<void> {
    this.onLocalChange(event);
    if (this.watchers.size === 0 && this.resources.store.kind === 'memory') return;
    try {
      await this.resources.store.publish(
        CHANGES_CHANNEL,
        JSON.stringify({ workerId: event.workerId, eventId: event.id }),
      );
    } catch (error) {
      this.log.warn({ err: error }, 'could not announce a worker change to watchers');
    }
  }

  /** Calls `onChange` for every worker change on any replica, until the returned function is called. */
  watch(onChange: (change: WorkerChange) => void): () => void {
    this.watchers.add(onChange);
    return () => this.watchers.delete(onChange);
  }

  private async deliver(message: string): Promise<void> {
    if (this.watchers.size === 0) return;
    try {
      const { workerId, eventId } = JSON.parse(message) as { workerId: string; eventId: string };
      const em = this.resources.orm.em.fork();
      const [worker, event] = await Promise.all([
        em.findOne(Worker, { id: workerId }),
        em.findOne(WorkerEvent, { id: eventId }),
      ]);
      if (!worker || !event) return;
      for (const watcher of this.watchers) watcher({ worker, event });
    } catch (error) {
      this.log.warn({ err: error }, 'could not deliver a worker change to watchers');
    }
  }
}
