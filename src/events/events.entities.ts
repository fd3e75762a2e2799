import { TenantEventCounterSchema, TenantEventSchema } from './event.entity.js';

/** The event log's tables, for the ORM list assembled in src/entities.ts. */
export const eventsEntities = [TenantEventSchema, TenantEventCounterSchema];
