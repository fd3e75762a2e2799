import { EntitySchema } from '@mikro-orm/core';
import type { MetricsRollup } from './metrics-rollup.js';
import { Worker } from './worker.entity.js';

/** Per-minute metrics history of a worker (24 h kept), so GetWorker can show trends without a metrics stack. */
export class WorkerMetricsRollup implements MetricsRollup {
  workerId!: string;
  minute!: Date;
  samples!: number;
  cpuPercentAvg!: number;
  cpuPercentMax!: number;
  rssBytesMax!: number;
  memoryPercentAvg!: number;
  eventLoopLagMsMax!: number;
  sessionCountMax!: number;
}

export const WorkerMetricsRollupSchema = new EntitySchema<WorkerMetricsRollup>({
  class: WorkerMetricsRollup,
  tableName: 'worker_metrics_rollup',
  properties: {
    workerId: {
      kind: 'm:1',
      entity: () => Worker,
      mapToPk: true,
      primary: true,
      deleteRule: 'cascade',
      fieldName: 'worker_id',
    },
    minute: { type: 'datetime', columnType: 'timestamptz', primary: true },
    samples: { type: 'integer' },
    cpuPercentAvg: { type: 'double' },
    cpuPercentMax: { type: 'double' },
    rssBytesMax: { type: 'double' },
    memoryPercentAvg: { type: 'double' },
    eventLoopLagMsMax: { type: 'double' },
    sessionCountMax: { type: 'integer' },
  },
  indexes: [{ name: 'worker_metrics_rollup_minute_idx', properties: ['minute'] }],
});
