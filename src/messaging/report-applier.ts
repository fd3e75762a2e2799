import type { EntityManager } from '@mikro-orm/postgresql';
import type { EventAnnouncement, EventLog, NewEvent } from '../events/event-log.js';
import { STATUS_RANK, type Message, type MessageStatus } from './message.entity.js';
import type { MessageJson } from './message.service.js';
import { query, records, rowToMessage, STATUS_RANK_SQL, type MessageRow } from './message.sql.js';
import type { MessagingConfig } from './messaging.config.js';
import {
  chatChanges,
  prepareBatch,
  type ChatChange,
  type ChatEvent,
  type MessageReport,
  type PreparedBatch,
} from './report-batch.js';

type Returned = MessageRow & { old_status: string; old_dispatched_at: Date | string | null };

/** What a batch changed, for after its commit. */
export interface AppliedReports {
  announcement: EventAnnouncement | undefined;
  /** Messages that left the in-flight state (sent, failed, or handed back for another dispatch). */
  confirmed: number;
}

/**
 * Our messages WhatsApp took. A message we gave up on (FAILED with no
 * WhatsApp id: its dispatches went unconfirmed, e.g. a frozen worker) that
 * the worker did send after all is SENT: the worker's fact beats our guess.
 */
const SENT = `update "message" m set "whatsapp_message_id" = r."wa",
        "status" = case when m."status" in ('QUEUED', 'FAILED') then 'SENT' else m."status" end,
        "failed_at" = case when m."status" = 'FAILED' then null else m."failed_at" end,
        "failure_reason" = case when m."status" = 'FAILED' then '' else m."failure_reason" end,
        "sent_at" = coalesce(m."sent_at", r."at"), "held_until" = null, "held_reason" = '', "updated_at" = ?
   from "message" o, jsonb_to_recordset(?::jsonb) as r("id" uuid, "session_id" uuid, "wa" text, "at" timestamptz)
  where o."id" = m."id" and m."id" = r."id" and m."session_id" = r."session_id" and m."direction" = 'OUTBOUND'
    and ((m."status" = 'FAILED' and m."whatsapp_message_id" is null)
      or (m."status" <> 'FAILED' and (m."status" = 'QUEUED' or m."whatsapp_message_id" is distinct from r."wa")))
  returning m.*, o."status" as "old_status", o."dispatched_at" as "old_dispatched_at"`;

/** Failures that end a message (or a retryable one past the attempts allowed); only a message not yet sent fails. */
const FAILED = `update "message" m set "status" = 'FAILED', "failure_reason" = r."reason", "failed_at" = r."at",
        "held_until" = null, "held_reason" = '', "updated_at" = ?
   from "message" o, jsonb_to_recordset(?::jsonb) as r("id" uuid, "session_id" uuid, "retry" boolean, "reason" text, "at" timestamptz)
  where o."id" = m."id" and m."id" = r."id" and m."session_id" = r."session_id" and m."direction" = 'OUTBOUND'
    and m."status" = 'QUEUED' and (not r."retry" or m."dispatch_attempts" >= ?)
  returning m.*, o."status" as "old_status", o."dispatched_at" as "old_dispatched_at"`;

/** Nothing went out and it may: queued again after a backoff (held_until shows when). */
const RETRY = `update "message" m set "dispatched_at" = null,
        "held_until" = ?::timestamptz + least(?, 1000 * power(2, greatest(m."dispatch_attempts" - 1, 0))) * interval '1 millisecond',
        "held_reason" = 'the worker could not send it yet (' || r."reason" || '); trying again', "updated_at" = ?
   from jsonb_to_recordset(?::jsonb) as r("id" uuid, "session_id" uuid, "retry" boolean, "reason" text, "at" timestamptz)
  where m."id" = r."id" and m."session_id" = r."session_id" and m."direction" = 'OUTBOUND'
    and m."status" = 'QUEUED' and r."retry" and m."dispatch_attempts" < ?
  returning m."id"`;

const RECEIPTS = `update "message" m set "status" = r."status",
        "sent_at" = coalesce(m."sent_at", r."sent_at"), "delivered_at" = coalesce(m."delivered_at", r."delivered_at"),
        "read_at" = coalesce(m."read_at", r."read_at"), "failed_at" = coalesce(m."failed_at", r."failed_at"),
        "failure_reason" = case when r."status" = 'FAILED' then 'WhatsApp reported that the message failed' else m."failure_reason" end,
        "updated_at" = ?
   from "message" o, jsonb_to_recordset(?::jsonb) as r("session_id" uuid, "wa" text, "status" text, "rank" int,
        "sent_at" timestamptz, "delivered_at" timestamptz, "read_at" timestamptz, "failed_at" timestamptz)
  where o."id" = m."id" and m."session_id" = r."session_id" and m."whatsapp_message_id" = r."wa"
    and m."direction" = 'OUTBOUND' and m."status" <> 'FAILED' and ${STATUS_RANK_SQL('m."status"')} < r."rank"
  returning m.*, o."status" as "old_status", o."dispatched_at" as "old_dispatched_at"`;

const INBOUND = `insert into "message" ("id", "tenant_id", "session_id", "direction", "whatsapp_message_id", "chat", "sender", "type", "text", "status", "idempotency_key", "created_at", "updated_at")
  select r."id", r."tenant_id", r."session_id", 'INBOUND', r."wa", r."chat", r."chat", 'text', r."text", 'RECEIVED', null, r."at", ?
    from jsonb_to_recordset(?::jsonb) as r("id" uuid, "tenant_id" uuid, "session_id" uuid, "wa" text, "chat" text, "text" text, "at" timestamptz)
  on conflict ("session_id", "whatsapp_message_id", "direction") do nothing
  returning *`;

const CHATS = (
  unread: string,
) => `insert into "chat" ("session_id", "chat", "tenant_id", "last_message_id", "last_activity_at", "unread_count", "created_at")
  select r."session_id", r."chat", r."tenant_id", r."last_message_id", r."last_activity_at", r."unread", ?
    from jsonb_to_recordset(?::jsonb) as r("session_id" uuid, "chat" text, "tenant_id" uuid, "last_message_id" uuid, "last_activity_at" timestamptz, "unread" int)
  on conflict ("session_id", "chat") do update set "last_message_id" = excluded."last_message_id",
        "last_activity_at" = greatest("chat"."last_activity_at", excluded."last_activity_at"),
        "unread_count" = ${unread}`;

/**
 * Applies a batch of message reports in the caller's transaction: one
 * statement per kind of change, however many reports (sent, failed,
 * receipts, inbound, chats), statuses only moving forward, and one event
 * per change appended to the log in the same transaction.
 */
export class MessageReportApplier {
  constructor(
    private readonly config: MessagingConfig,
    private readonly deps: { events: EventLog; toJson: MessageJson; newId: () => string },
  ) {}

  async apply(tx: EntityManager, reports: readonly MessageReport[], now: Date): Promise<AppliedReports> {
    const batch = prepareBatch(reports, this.deps.newId);
    const events: NewEvent[] = [];
    const changes: ChatEvent[] = [];
    let confirmed = 0;
    const statusEvent = (message: Message) =>
      events.push({
        tenantId: message.tenantId,
        type: 'message.status',
        sessionId: message.sessionId,
        occurredAt: now,
        data: this.deps.toJson(message),
      });

    if (batch.sent.length > 0) confirmed += await this.applySent(tx, batch, now, statusEvent, changes);
    if (batch.failed.length > 0) confirmed += await this.applyFailed(tx, batch, now, statusEvent);
    if (batch.receipts.length > 0) {
      const rows = await query<Returned>(tx, RECEIPTS, [now, records(batch.receipts)]);
      const reached = new Map(batch.receipts.map((r) => [`${r.session_id} ${r.wa}`, r.reached]));
      for (const row of rows) {
        const message = rowToMessage(row);
        const old = STATUS_RANK[row.old_status as MessageStatus] ?? 0;
        // One event per status the message moved through, each showing the message as it was then.
        for (const status of reached.get(`${message.sessionId} ${message.whatsappMessageId ?? ''}`) ?? []) {
          if (STATUS_RANK[status] > old && STATUS_RANK[status] <= STATUS_RANK[message.status])
            statusEvent(asOf(message, status));
        }
      }
    }
    if (batch.inbound.length > 0) {
      const rows = await query<MessageRow>(tx, INBOUND, [now, records(batch.inbound)]);
      const indexOf = new Map(batch.inbound.map((m) => [m.id, m.index]));
      for (const row of rows) {
        const message = rowToMessage(row);
        events.push({
          tenantId: message.tenantId,
          type: 'message.received',
          sessionId: message.sessionId,
          occurredAt: now,
          data: this.deps.toJson(message),
        });
        changes.push({
          index: indexOf.get(message.id) ?? 0,
          kind: 'inbound',
          sessionId: message.sessionId,
          tenantId: message.tenantId,
          chat: message.chat,
          messageId: message.id,
          at: message.createdAt,
        });
      }
    }
    await this.upsertChats(tx, chatChanges(changes), now);
    const announcement = events.length > 0 ? await this.deps.events.append(tx, events, now) : undefined;
    return { announcement, confirmed };
  }

  /** Our messages WhatsApp took: SENT (a chat's first send resets its unread count). Returns how many left flight. */
  private async applySent(
    tx: EntityManager,
    batch: PreparedBatch,
    now: Date,
    statusEvent: (message: Message) => void,
    changes: ChatEvent[],
  ): Promise<number> {
    let confirmed = 0;
    const rows = await query<Returned>(tx, SENT, [now, records(batch.sent)]);
    const indexOf = new Map(batch.sent.map((s) => [s.id, s.index]));
    for (const row of rows) {
      const message = rowToMessage(row);
      if (row.old_status !== 'QUEUED' && row.old_status !== 'FAILED') continue; // WhatsApp's id corrected; no new status
      // A FAILED one had already left flight when it was given up on.
      if (row.old_status === 'QUEUED') confirmed += 1;
      statusEvent(message);
      changes.push({
        index: indexOf.get(message.id) ?? 0,
        kind: 'sent',
        sessionId: message.sessionId,
        tenantId: message.tenantId,
        chat: message.chat,
        messageId: message.id,
        at: message.sentAt ?? now,
      });
    }
    return confirmed;
  }

  /** Failures: final ones end the message FAILED, retryable ones queue it again after a backoff. */
  private async applyFailed(
    tx: EntityManager,
    batch: PreparedBatch,
    now: Date,
    statusEvent: (message: Message) => void,
  ): Promise<number> {
    const failed = await query<Returned>(tx, FAILED, [now, records(batch.failed), this.config.dispatchMaxAttempts]);
    for (const row of failed) statusEvent(rowToMessage(row));
    const retried = await query<{ id: string }>(tx, RETRY, [
      now,
      this.config.dispatchTimeoutMs,
      now,
      records(batch.failed),
      this.config.dispatchMaxAttempts,
    ]);
    return failed.length + retried.length;
  }

  /** Wakes the event streams of the tenants the batch wrote events for. */
  async announce(applied: AppliedReports): Promise<void> {
    if (applied.announcement) await this.deps.events.announce(applied.announcement);
  }

  private async upsertChats(tx: EntityManager, chats: readonly ChatChange[], now: Date): Promise<void> {
    const reset = chats.filter((c) => c.reset);
    const added = chats.filter((c) => !c.reset);
    if (reset.length > 0) await query(tx, CHATS('excluded."unread_count"'), [now, records(reset)]);
    if (added.length > 0) {
      await query(tx, CHATS('"chat"."unread_count" + excluded."unread_count"'), [now, records(added)]);
    }
  }
}

/** The message as it was when it reached `status` (later stages not yet stamped). */
function asOf(message: Message, status: MessageStatus): Message {
  if (status === message.status) return message;
  return {
    ...message,
    status,
    readAt: STATUS_RANK[status] >= STATUS_RANK.READ ? message.readAt : null,
    deliveredAt: STATUS_RANK[status] >= STATUS_RANK.DELIVERED ? message.deliveredAt : null,
  };
}
