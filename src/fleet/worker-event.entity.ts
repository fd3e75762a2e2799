import { EntitySchema } from '@mikro-orm/core';
import { Worker } from './worker.entity.js';

/** What happened to a worker. */
export type WorkerEventKind = 'ONLINE' | 'OFFLINE' | 'FAILED' | 'REMOVED' | 'CORDONED' | 'DRAINING' | 'UNCORDONED';

/** One change of a worker's status or schedulability, with its reason; rows are only inserted. */
export class WorkerEvent {
  id!: string;
  workerId!: string;
  kind!: WorkerEventKind;
  reason!: string;
  actorUserId!: string | null;
  occurredAt!: Date;
}

export const WorkerEventSchema = new EntitySchema<WorkerEvent>({
  class: WorkerEvent,
  tableName: 'worker_event',
  properties: {
    id: { type: 'uuid', primary: true },
    workerId: { kind: 'm:1', entity: () => Worker, mapToPk: true, deleteRule: 'cascade', fieldName: 'worker_id' },
    kind: { type: 'text' },
    reason: { type: 'text' },
    actorUserId: { type: 'uuid', nullable: true },
    occurredAt: { type: 'datetime', columnType: 'timestamptz' },
  },
  indexes: [{ name: 'worker_event_worker_time_idx', properties: ['workerId', 'occurredAt', 'id'] }],
});
