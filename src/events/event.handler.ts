import type { ServiceImpl } from '@connectrpc/connect';
import { create, fromJson, type JsonValue } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import {
  EventSchema,
  ListEventsResponseSchema,
  SessionQrIssuedSchema,
  SessionStatusChangedSchema,
  StreamEventsResponseSchema,
  type Event,
  type EventService as EventServiceDesc,
} from '../../gen/switchboard/v1/event_pb.js';
import { MessageSchema } from '../../gen/switchboard/v1/message_pb.js';
import { requirePrincipal } from '../transport/auth.interceptor.js';
import { requestEntityManager } from '../transport/interceptors.js';
import { currentPrincipal } from '../transport/stream-guard.interceptor.js';
import { maySeeQrCodes } from '../sessions/qr-access.js';
import type { Principal } from '../identity/principal.js';
import { encodeEventCursor } from './event-cursor.js';
import type { EventFeed } from './event-feed.js';
import type { StoredEvent } from './event-reader.js';

// Fields added to a payload later must not break reading events stored before a downgrade.
const LENIENT = { ignoreUnknownFields: true };

/** An event as stored, back into the API's message: `data` is the Connect JSON of its payload. */
export function eventToProto(tenantId: string, event: StoredEvent): Event {
  const data = event.data as JsonValue;
  const payload: Event['payload'] = event.type.startsWith('message.')
    ? { case: 'message', value: fromJson(MessageSchema, data, LENIENT) }
    : event.type === 'session.status'
      ? { case: 'sessionStatus', value: fromJson(SessionStatusChangedSchema, data, LENIENT) }
      : event.type === 'session.qr'
        ? { case: 'sessionQr', value: fromJson(SessionQrIssuedSchema, data, LENIENT) }
        : { case: undefined };
  return create(EventSchema, {
    cursor: encodeEventCursor(tenantId, event.seq),
    sequence: event.seq,
    type: event.type,
    occurredAt: timestampFromDate(event.occurredAt),
    sessionId: event.sessionId ?? '',
    payload,
  });
}

/** QR codes link accounts: callers who may not manage sessions get none (decided per event). */
function visibleTo(principal: Principal, event: StoredEvent): boolean {
  return event.type !== 'session.qr' || maySeeQrCodes(principal);
}

/** EventService: protobuf <-> domain only; the log's rules live in EventFeed and EventStream. */
export function createEventHandler(feed: EventFeed): ServiceImpl<typeof EventServiceDesc> {
  return {
    async listEvents(req, ctx) {
      const principal = requirePrincipal(ctx);
      const page = await feed.list(requestEntityManager(ctx), principal, {
        afterCursor: req.afterCursor,
        types: req.types,
        sessionId: req.sessionId,
        pageSize: req.pageSize,
      });
      return create(ListEventsResponseSchema, {
        events: page.events.filter((e) => visibleTo(principal, e)).map((e) => eventToProto(page.tenantId, e)),
        // Past the QR codes left out too, so the next page does not return to them.
        nextCursor: page.after === undefined ? '' : encodeEventCursor(page.tenantId, page.after),
      });
    },
    async *streamEvents(req, ctx) {
      const { tenantId, events } = await feed.open(
        requestEntityManager(ctx),
        await currentPrincipal(ctx),
        { afterCursor: req.afterCursor, types: req.types, sessionId: req.sessionId, fromBeginning: req.fromBeginning },
        ctx.signal,
      );
      for await (const event of events) {
        // The caller as last re-checked: a role downgraded mid-stream stops getting QR codes at once.
        if (!visibleTo(await currentPrincipal(ctx), event)) continue;
        yield create(StreamEventsResponseSchema, { event: eventToProto(tenantId, event) });
      }
    },
  };
}
