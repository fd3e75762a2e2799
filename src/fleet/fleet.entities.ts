import { JoinTokenSchema } from './join-token.entity.js';
import { PlatformSettingSchema } from './platform-setting.entity.js';
import { WorkerEventSchema } from './worker-event.entity.js';
import { WorkerMetricsRollupSchema } from './worker-metrics-rollup.entity.js';
import { WorkerSchema } from './worker.entity.js';

/** The fleet capability's tables, for the ORM list assembled in src/entities.ts. */
export const fleetEntities = [
  WorkerSchema,
  WorkerEventSchema,
  PlatformSettingSchema,
  WorkerMetricsRollupSchema,
  JoinTokenSchema,
];
