import type { EntityManager } from '@mikro-orm/postgresql';

/** What a reader asks of the log: a tenant, a position, and optional filters. */
export interface EventFilter {
  tenantId: string;
  /** Only these types: exact names, or prefixes ending in "." ("message."); empty for all. */
  types: readonly string[];
  /** Only this session's events. */
  sessionId?: string;
}

/** One stored event as readers get it. */
export interface StoredEvent {
  seq: bigint;
  type: string;
  sessionId: string | null;
  occurredAt: Date;
  data: unknown;
}

/** A page of the log, and how far it looked. */
export interface EventPage {
  events: StoredEvent[];
  /**
   * When the page is not full: the tenant's last committed number as the
   * same statement saw it. Every event up to it has been considered (those
   * the filters leave out included), so a follower can continue after it.
   */
  scannedTo: bigint | undefined;
}

/**
 * Reads a tenant's log in order. Numbers are given without gaps in commit
 * order (the counter row is held to commit), so reading `seq > n` after
 * having seen n never skips an event that commits later.
 */
export class EventReader {
  async page(em: EntityManager, filter: EventFilter, after: bigint, limit: number): Promise<EventPage> {
    const exact = filter.types.filter((t) => !t.endsWith('.'));
    const prefixes = filter.types.filter((t) => t.endsWith('.'));
    const conditions = [`e."tenant_id" = ?`, `e."seq" > ?`];
    const params: unknown[] = [filter.tenantId, after.toString()];
    if (filter.types.length > 0) {
      // As JSON: the driver would spread a JS array into a list of parameters.
      conditions.push(
        `(e."type" in (select jsonb_array_elements_text(?::jsonb)) or exists (select 1 from jsonb_array_elements_text(?::jsonb) p(prefix) where starts_with(e."type", p.prefix)))`,
      );
      params.push(JSON.stringify(exact), JSON.stringify(prefixes));
    }
    if (filter.sessionId) {
      conditions.push(`e."session_id" = ?`);
      params.push(filter.sessionId);
    }
    const rows = await em.getConnection().execute<
      {
        seq: string;
        type: string;
        session_id: string | null;
        occurred_at: Date | string;
        data: unknown;
        last_seq: string | null;
      }[]
    >(
      `select e."seq", e."type", e."session_id", e."occurred_at", e."data",
              (select c."last_seq" from "tenant_event_counter" c where c."tenant_id" = ?) as last_seq
         from (select 1) one
         left join lateral (
           select * from "event" e where ${conditions.join(' and ')} order by e."seq" limit ?
         ) e on true`,
      [filter.tenantId, ...params, limit],
      'all',
      em.getTransactionContext(),
    );
    // The lateral join keeps one row (all nulls) when nothing matched, so the counter still comes back.
    const events = rows
      .filter((row) => row.seq !== null)
      .map((row) => ({
        seq: BigInt(row.seq),
        type: row.type,
        sessionId: row.session_id,
        occurredAt: row.occurred_at instanceof Date ? row.occurred_at : new Date(row.occurred_at),
        data: typeof row.data === 'string' ? (JSON.parse(row.data) as unknown) : row.data,
      }));
    const lastSeq = rows[0]?.last_seq;
    return {
      events,
      scannedTo: events.length < limit && lastSeq !== null && lastSeq !== undefined ? BigInt(lastSeq) : undefined,
    };
  }

  /** The tenant's last committed event number (0 before its first): where "new events only" starts. */
  async lastSeq(em: EntityManager, tenantId: string): Promise<bigint> {
    const [row] = await em
      .getConnection()
      .execute<{ last_seq: string }[]>(
        `select "last_seq" from "tenant_event_counter" where "tenant_id" = ?`,
        [tenantId],
        'all',
        em.getTransactionContext(),
      );
    return row ? BigInt(row.last_seq) : 0n;
  }

  /**
   * Whether `sessionId` is the tenant's: a session it has, or one it had
   * (deleted) that its log still mentions. Another tenant's is neither.
   */
  async sessionKnown(em: EntityManager, tenantId: string, sessionId: string): Promise<boolean> {
    const [row] = await em.getConnection().execute<{ known: boolean }[]>(
      `select exists (select 1 from "session" where "id" = ? and "tenant_id" = ?)
           or exists (select 1 from "event" where "tenant_id" = ? and "session_id" = ?) as known`,
      [sessionId, tenantId, tenantId, sessionId],
      'all',
      em.getTransactionContext(),
    );
    return row?.known === true;
  }
}
