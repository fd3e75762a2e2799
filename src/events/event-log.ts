import type { EntityManager } from '@mikro-orm/postgresql';
import type { CoordinationStore } from '../platform/coordination/coordination-store.js';

/** What the log records; dot-separated like the webhook types they become. */
export type EventType = 'message.queued' | 'message.received' | 'message.status' | 'session.status' | 'session.qr';

/** An event to append: its payload is the Connect API's JSON of the event's message. */
export interface NewEvent {
  tenantId: string;
  type: EventType;
  sessionId: string | null;
  occurredAt: Date;
  data: unknown;
}

/** The last number given per tenant by a committed append: what to announce. */
export type EventAnnouncement = ReadonlyMap<string, string>;

/** The coordination-store channel announcing a tenant's new events (message: its last number). */
export function eventChannel(tenantId: string): string {
  return `events:${tenantId}`;
}

/**
 * The per-tenant event log. Events are appended inside the caller's
 * transaction, so an event exists exactly when the change it announces
 * does; each tenant's counter row is taken (and held to commit) to number
 * its events without gaps in commit order, so a reader that has seen
 * number n has seen everything before it. Tenants are taken in a fixed
 * order, so two batches spanning the same tenants cannot deadlock.
 */
export class EventLog {
  constructor(private readonly store: CoordinationStore) {}

  /** Appends in the transaction `em` runs in; announce the result after commit. */
  async append(em: EntityManager, events: readonly NewEvent[], now: Date): Promise<EventAnnouncement> {
    const byTenant = new Map<string, NewEvent[]>();
    for (const event of events) {
      const list = byTenant.get(event.tenantId) ?? [];
      list.push(event);
      byTenant.set(event.tenantId, list);
    }
    const connection = em.getConnection();
    const tx: unknown = em.getTransactionContext();
    const announced = new Map<string, string>();
    for (const tenantId of [...byTenant.keys()].sort()) {
      const list = byTenant.get(tenantId) as NewEvent[];
      const [counter] = await connection.execute<{ last_seq: string }[]>(
        `insert into "tenant_event_counter" ("tenant_id", "last_seq") values (?, ?)
         on conflict ("tenant_id") do update set "last_seq" = "tenant_event_counter"."last_seq" + excluded."last_seq"
         returning "last_seq"`,
        [tenantId, list.length],
        'all',
        tx,
      );
      if (!counter) throw new Error('the event counter upsert returned no row');
      const last = BigInt(counter.last_seq);
      const first = last - BigInt(list.length) + 1n;
      // One JSON parameter for the whole batch: one statement however many events.
      const rows = list.map((event, i) => ({
        seq: (first + BigInt(i)).toString(),
        type: event.type,
        session_id: event.sessionId,
        occurred_at: event.occurredAt.toISOString(),
        data: event.data,
      }));
      await connection.execute(
        `insert into "event" ("tenant_id", "seq", "type", "session_id", "occurred_at", "data", "created_at")
         select ?::uuid, r."seq", r."type", r."session_id", r."occurred_at", r."data", ?::timestamptz
           from jsonb_to_recordset(?::jsonb) as r("seq" bigint, "type" text, "session_id" uuid, "occurred_at" timestamptz, "data" jsonb)`,
        [tenantId, now.toISOString(), JSON.stringify(rows)],
        'run',
        tx,
      );
      announced.set(tenantId, last.toString());
    }
    return announced;
  }

  /** Wakes the streams of the tenants whose events just committed, on every replica. */
  async announce(announcement: EventAnnouncement): Promise<void> {
    for (const [tenantId, lastSeq] of announcement) await this.store.publish(eventChannel(tenantId), lastSeq);
  }
}
