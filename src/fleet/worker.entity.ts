import { EntitySchema } from '@mikro-orm/core';

/** Liveness as stored (see worker.state.ts for the transitions). */
export type WorkerStatus = 'ONLINE' | 'OFFLINE' | 'FAILED' | 'REMOVED';

/** Whether new work may be placed on the worker; the operator's choice, kept across reconnects. */
export type Schedulability = 'ACTIVE' | 'CORDONED' | 'DRAINING';

/** Session engines a worker can run. */
export type EngineKind = 'SANDBOX' | 'BAILEYS';

/** One reading of a worker's resource use, as reported in its heartbeat. */
export interface WorkerMetrics {
  cpuPercent: number;
  rssBytes: number;
  heapUsedBytes: number;
  heapTotalBytes: number;
  loadAverage: [number, number, number];
  freeMemoryBytes: number;
  totalMemoryBytes: number;
  eventLoopLagMs: number;
  sessionCount: number;
  cpuCount: number;
}

/** The durable record of a worker; its liveness lease lives in the coordination store. */
export class Worker {
  id!: string;
  name!: string;
  status!: WorkerStatus;
  statusReason!: string;
  agentVersion!: string;
  capacity!: number;
  supportedEngines!: EngineKind[];
  labels!: Record<string, string>;
  /** Random per agent process; tells a reconnect from a second process with the same name. */
  instanceId!: string;
  /** The stream currently representing the worker; guards every liveness update. */
  streamId!: string | null;
  replicaId!: string | null;
  connectedSince!: Date | null;
  lastHeartbeatAt!: Date | null;
  metrics!: WorkerMetrics | null;
  firstSeenAt!: Date;
  disconnectedAt!: Date | null;
  updatedAt!: Date;
  /** Bumped to invalidate every credential issued to this worker so far. */
  credentialGeneration!: number;
  schedulability!: Schedulability;
  schedulabilityReason!: string;
  /** Set when the connection was lost: FAILED at this time unless the worker is back. */
  failAfter!: Date | null;
}

export const WorkerSchema = new EntitySchema<Worker>({
  class: Worker,
  tableName: 'worker',
  properties: {
    id: { type: 'uuid', primary: true },
    name: { type: 'text', unique: 'worker_name_unique' },
    status: { type: 'text' },
    statusReason: { type: 'text' },
    agentVersion: { type: 'text' },
    capacity: { type: 'integer' },
    supportedEngines: { type: 'json' },
    labels: { type: 'json' },
    instanceId: { type: 'text' },
    streamId: { type: 'text', nullable: true },
    replicaId: { type: 'text', nullable: true },
    connectedSince: { type: 'datetime', columnType: 'timestamptz', nullable: true },
    lastHeartbeatAt: { type: 'datetime', columnType: 'timestamptz', nullable: true },
    metrics: { type: 'json', nullable: true },
    firstSeenAt: { type: 'datetime', columnType: 'timestamptz' },
    disconnectedAt: { type: 'datetime', columnType: 'timestamptz', nullable: true },
    updatedAt: { type: 'datetime', columnType: 'timestamptz' },
    credentialGeneration: { type: 'integer', default: 0 },
    schedulability: { type: 'text', default: 'ACTIVE' },
    schedulabilityReason: { type: 'text', default: '' },
    failAfter: { type: 'datetime', columnType: 'timestamptz', nullable: true },
  },
  indexes: [{ name: 'worker_status_idx', properties: ['status'] }],
});
