import { EntitySchema } from '@mikro-orm/core';

/** One security-relevant event; rows are only ever inserted. */
export class AuditEvent {
  id!: string;
  occurredAt!: Date;
  action!: string;
  tenantId!: string | null;
  actorUserId!: string | null;
  actorApiKeyId!: string | null;
  targetType!: string;
  targetId!: string;
  ip!: string;
  userAgent!: string;
  details!: Record<string, string>;
}

export const AuditEventSchema = new EntitySchema<AuditEvent>({
  class: AuditEvent,
  tableName: 'audit_event',
  properties: {
    id: { type: 'uuid', primary: true },
    occurredAt: { type: 'datetime', columnType: 'timestamptz' },
    action: { type: 'text' },
    // No foreign keys: the log outlives the tenants, users and keys it names.
    tenantId: { type: 'uuid', nullable: true },
    actorUserId: { type: 'uuid', nullable: true },
    actorApiKeyId: { type: 'text', nullable: true },
    targetType: { type: 'text' },
    targetId: { type: 'text' },
    ip: { type: 'text' },
    userAgent: { type: 'text' },
    details: { type: 'json' },
  },
  indexes: [
    { name: 'audit_event_tenant_time_idx', properties: ['tenantId', 'occurredAt', 'id'] },
    { name: 'audit_event_time_idx', properties: ['occurredAt', 'id'] },
  ],
});
