import type { EntityManager } from '@mikro-orm/postgresql';
import type { Message, MessageDirection, MessageStatus } from './message.entity.js';

/**
 * Plain SQL for the send pipeline's hot paths (accepting, dispatching,
 * applying what workers report): one statement for many rows, no entity
 * hydration or unit of work. The entity stays for reads and migrations.
 */

/** A message row as PostgreSQL returns it. */
export interface MessageRow {
  id: string;
  seq: string;
  tenant_id: string;
  session_id: string;
  direction: string;
  whatsapp_message_id: string | null;
  chat: string;
  sender: string;
  type: string;
  text: string;
  status: string;
  idempotency_key: string | null;
  sent_at: Date | string | null;
  delivered_at: Date | string | null;
  read_at: Date | string | null;
  failed_at: Date | string | null;
  failure_reason: string;
  held_until: Date | string | null;
  held_reason: string;
  dispatch_epoch: number | null;
  dispatched_at: Date | string | null;
  dispatch_attempts: number;
  created_at: Date | string;
  updated_at: Date | string;
}

const date = (value: Date | string) => (value instanceof Date ? value : new Date(value));
const maybeDate = (value: Date | string | null) => (value === null ? null : date(value));

export function rowToMessage(row: MessageRow): Message {
  return {
    id: row.id,
    seq: String(row.seq),
    tenantId: row.tenant_id,
    sessionId: row.session_id,
    direction: row.direction as MessageDirection,
    whatsappMessageId: row.whatsapp_message_id,
    chat: row.chat,
    sender: row.sender,
    type: row.type,
    text: row.text,
    status: row.status as MessageStatus,
    idempotencyKey: row.idempotency_key,
    sentAt: maybeDate(row.sent_at),
    deliveredAt: maybeDate(row.delivered_at),
    readAt: maybeDate(row.read_at),
    failedAt: maybeDate(row.failed_at),
    failureReason: row.failure_reason,
    heldUntil: maybeDate(row.held_until),
    heldReason: row.held_reason,
    dispatchEpoch: row.dispatch_epoch,
    dispatchedAt: maybeDate(row.dispatched_at),
    dispatchAttempts: row.dispatch_attempts,
    createdAt: date(row.created_at),
    updatedAt: date(row.updated_at),
  };
}

/** Runs one statement in the transaction `em` is in (if any) and returns its rows. */
export function query<T>(em: EntityManager, sql: string, params: readonly unknown[]): Promise<T[]> {
  return em.getConnection().execute<T[]>(sql, [...params], 'all', em.getTransactionContext());
}

/** The rank of a status in SQL: outbound statuses only move forward (QUEUED < SENT < DELIVERED < READ < FAILED). */
export const STATUS_RANK_SQL = (column: string) =>
  `(case ${column} when 'QUEUED' then 0 when 'SENT' then 1 when 'DELIVERED' then 2 when 'READ' then 3 else 4 end)`;

/** A JSON parameter for jsonb_to_recordset: one parameter however many rows. */
export const records = (rows: readonly unknown[]) => JSON.stringify(rows);
