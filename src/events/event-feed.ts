import type { EntityManager } from '@mikro-orm/postgresql';
import { DomainError } from '../../lib/errors.js';
import { normalisePageSize } from '../fleet/page-token.js';
import { requireTenant } from '../identity/api-key.service.js';
import type { Principal } from '../identity/principal.js';
import { decodeEventCursor } from './event-cursor.js';
import type { EventFilter, EventReader, StoredEvent } from './event-reader.js';
import type { EventStream } from './event-stream.js';

const LIST_PAGE = { default: 100, max: 1000 };

/** What a caller asks of its tenant's log. */
export interface EventRequest {
  afterCursor: string;
  types: readonly string[];
  sessionId: string;
}

/**
 * The tenant-facing use cases of the event log: ListEvents and
 * StreamEvents. The tenant comes from the caller, never from the request;
 * a cursor or session of another tenant is refused.
 */
export class EventFeed {
  constructor(
    private readonly reader: EventReader,
    private readonly stream: EventStream,
  ) {}

  /** One page, oldest first, and the position it reached (the last event's, or the one given). */
  async list(
    em: EntityManager,
    principal: Principal,
    request: EventRequest & { pageSize: number },
  ): Promise<{ tenantId: string; events: StoredEvent[]; after: bigint | undefined }> {
    const filter = await this.filterFor(em, principal, request);
    const after = decodeEventCursor(filter.tenantId, request.afterCursor);
    const pageSize = normalisePageSize(request.pageSize, LIST_PAGE);
    const page = await this.reader.page(em, filter, after ?? 0n, pageSize);
    return { tenantId: filter.tenantId, events: page.events, after: page.events.at(-1)?.seq ?? after };
  }

  /** Replays from the cursor (or the beginning, or now), then follows live events until `signal` aborts. */
  async open(
    em: EntityManager,
    principal: Principal,
    request: EventRequest & { fromBeginning: boolean },
    signal: AbortSignal,
  ): Promise<{ tenantId: string; events: AsyncGenerator<StoredEvent> }> {
    const filter = await this.filterFor(em, principal, request);
    const after = decodeEventCursor(filter.tenantId, request.afterCursor);
    const start =
      after !== undefined
        ? { after }
        : request.fromBeginning
          ? { fromBeginning: true as const }
          : { newOnly: true as const };
    return { tenantId: filter.tenantId, events: this.stream.follow(filter, start, signal) };
  }

  private async filterFor(em: EntityManager, principal: Principal, request: EventRequest): Promise<EventFilter> {
    const tenantId = requireTenant(principal);
    if (request.sessionId && !(await this.reader.sessionKnown(em, tenantId, request.sessionId))) {
      throw DomainError.notFound('session', request.sessionId);
    }
    return { tenantId, types: request.types, sessionId: request.sessionId || undefined };
  }
}
