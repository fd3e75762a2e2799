import type { Logger } from '../../lib/logger.js';
import type { EventAnnouncement, EventLog, NewEvent } from '../events/event-log.js';
import type { EntityManager } from '@mikro-orm/postgresql';
import type { StandingChange } from './session-standing.js';

/**
 * Builds the stored payloads of session events: the Connect JSON of
 * SessionStatusChanged and SessionQrIssued. A port, because only handlers
 * speak protobuf (session-event-mapping.handler.ts implements it).
 */
export interface SessionEventPayloads {
  status(change: StandingChange): unknown;
  qr(qr: { payload: string; expiresAt: Date }): unknown;
}

const NOTHING: EventAnnouncement = new Map();

/**
 * Writes `session.status` and `session.qr` events in the transaction that
 * changes the session, from what applyStanding reports: every path that
 * changes a session's standing (tenant commands, placement, worker and
 * fleet events) goes through applyStanding, so none is missed. Only real
 * changes are recorded: a status that stays (a new reason while queued)
 * is not an event, a QR code already on show is not shown again.
 */
export class SessionEvents {
  constructor(
    private readonly log: EventLog,
    private readonly payloads: SessionEventPayloads,
    private readonly logger: Logger,
  ) {}

  eventsOf(changes: readonly StandingChange[], now: Date): NewEvent[] {
    const events: NewEvent[] = [];
    for (const change of changes) {
      const base = { tenantId: change.tenantId, sessionId: change.sessionId, occurredAt: now };
      if (change.status !== change.previousStatus) {
        events.push({ ...base, type: 'session.status', data: this.payloads.status(change) });
      }
      if (change.newQr) events.push({ ...base, type: 'session.qr', data: this.payloads.qr(change.newQr) });
    }
    return events;
  }

  /** Appends the events of `changes` in `em`'s transaction; announce the result once it commits. */
  async append(em: EntityManager, changes: readonly StandingChange[], now: Date): Promise<EventAnnouncement> {
    const events = this.eventsOf(changes, now);
    // No counter row taken for nothing: placement rounds change many sessions without an event.
    if (events.length === 0) return NOTHING;
    return this.log.append(em, events, now);
  }

  /** Wakes event streams; a lost announcement only delays them until their next poll. */
  async announce(announcement: EventAnnouncement): Promise<void> {
    if (announcement.size === 0) return;
    try {
      await this.log.announce(announcement);
    } catch (error) {
      this.logger.warn({ err: error }, 'could not announce session events; streams catch up on their next poll');
    }
  }
}
