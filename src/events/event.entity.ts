import { EntitySchema } from '@mikro-orm/core';

/**
 * One entry of a tenant's event log. `seq` numbers the tenant's events
 * 1, 2, 3... in commit order; `data` is the event's payload in the Connect
 * API's JSON form, so the stream and webhooks serve it as stored.
 */
export class TenantEvent {
  tenantId!: string;
  seq!: string;
  type!: string;
  sessionId!: string | null;
  occurredAt!: Date;
  data!: unknown;
  createdAt!: Date;
}

export const TenantEventSchema = new EntitySchema<TenantEvent>({
  class: TenantEvent,
  tableName: 'event',
  properties: {
    tenantId: { type: 'uuid', primary: true },
    seq: { type: 'bigint', primary: true },
    type: { type: 'text' },
    sessionId: { type: 'uuid', nullable: true },
    occurredAt: { type: 'datetime', columnType: 'timestamptz' },
    data: { type: 'json', columnType: 'jsonb' },
    createdAt: { type: 'datetime', columnType: 'timestamptz' },
  },
  indexes: [{ name: 'event_created_idx', properties: ['createdAt'] }],
});

/** The last number given to a tenant's events; its row lock orders appends. */
export class TenantEventCounter {
  tenantId!: string;
  lastSeq!: string;
}

export const TenantEventCounterSchema = new EntitySchema<TenantEventCounter>({
  class: TenantEventCounter,
  tableName: 'tenant_event_counter',
  properties: {
    tenantId: { type: 'uuid', primary: true },
    lastSeq: { type: 'bigint', default: 0 },
  },
});
