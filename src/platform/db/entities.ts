import { WorkerSchema } from '../../fleet/worker.entity.js';

/** Every entity the ORM knows; one list so the app, the CLI and tests agree. */
export const entities = [WorkerSchema];
