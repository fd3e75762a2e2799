import { AuditEventSchema } from './audit-event.entity.js';

/** The audit capability's tables, for the ORM list assembled in src/entities.ts. */
export const auditEntities = [AuditEventSchema];
