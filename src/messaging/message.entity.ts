import { EntitySchema, OptionalProps } from '@mikro-orm/core';
import { Session } from '../sessions/session.entity.js';

export type MessageDirection = 'OUTBOUND' | 'INBOUND';
/** How far a message got; inbound messages are RECEIVED. */
export type MessageStatus = 'QUEUED' | 'SENT' | 'DELIVERED' | 'READ' | 'FAILED' | 'RECEIVED';

/** Outbound statuses only move forward, to a higher rank; FAILED ends a message. */
export const STATUS_RANK: Readonly<Record<MessageStatus, number>> = {
  QUEUED: 0,
  SENT: 1,
  DELIVERED: 2,
  READ: 3,
  FAILED: 4,
  RECEIVED: 0,
};

/**
 * One message through a session, with its delivery status. The hot paths
 * (accepting, dispatching, applying receipts) write it with plain SQL
 * (message.sql.ts); the entity describes the table for reads and migrations.
 */
export class Message {
  [OptionalProps]?:
    | 'seq'
    | 'type'
    | 'sender'
    | 'sentAt'
    | 'deliveredAt'
    | 'readAt'
    | 'failedAt'
    | 'failureReason'
    | 'heldUntil'
    | 'heldReason'
    | 'dispatchEpoch'
    | 'dispatchedAt'
    | 'dispatchAttempts';
  id!: string;
  /** Insertion order across all messages: the history's keyset cursor. */
  seq!: string;
  tenantId!: string;
  sessionId!: string;
  direction!: MessageDirection;
  /** WhatsApp's id; null until the worker has sent it. */
  whatsappMessageId!: string | null;
  chat!: string;
  /** The session's own number for outbound (once known), the sender for inbound. */
  sender!: string;
  type!: string;
  text!: string;
  status!: MessageStatus;
  /** The tenant's retry key for a send (or the one generated); unique per session. */
  idempotencyKey!: string | null;
  sentAt!: Date | null;
  deliveredAt!: Date | null;
  readAt!: Date | null;
  failedAt!: Date | null;
  failureReason!: string;
  /** The send governor holds this QUEUED message until then. */
  heldUntil!: Date | null;
  heldReason!: string;
  /** The epoch of the assignment it was last handed to a worker under. */
  dispatchEpoch!: number | null;
  dispatchedAt!: Date | null;
  dispatchAttempts!: number;
  createdAt!: Date;
  updatedAt!: Date;
}

export const MessageSchema = new EntitySchema<Message>({
  class: Message,
  tableName: 'message',
  properties: {
    id: { type: 'uuid', primary: true },
    seq: { type: 'bigint', columnType: 'bigserial', autoincrement: true, unique: 'message_seq_unique' },
    tenantId: { type: 'uuid' },
    sessionId: { kind: 'm:1', entity: () => Session, mapToPk: true, deleteRule: 'cascade', fieldName: 'session_id' },
    direction: { type: 'text' },
    whatsappMessageId: { type: 'text', nullable: true },
    chat: { type: 'text' },
    sender: { type: 'text', default: '' },
    type: { type: 'text', default: 'text' },
    text: { type: 'text' },
    status: { type: 'text' },
    idempotencyKey: { type: 'text', nullable: true },
    sentAt: { type: 'datetime', columnType: 'timestamptz', nullable: true },
    deliveredAt: { type: 'datetime', columnType: 'timestamptz', nullable: true },
    readAt: { type: 'datetime', columnType: 'timestamptz', nullable: true },
    failedAt: { type: 'datetime', columnType: 'timestamptz', nullable: true },
    failureReason: { type: 'text', default: '' },
    heldUntil: { type: 'datetime', columnType: 'timestamptz', nullable: true },
    heldReason: { type: 'text', default: '' },
    dispatchEpoch: { type: 'integer', nullable: true },
    dispatchedAt: { type: 'datetime', columnType: 'timestamptz', nullable: true },
    dispatchAttempts: { type: 'integer', default: 0 },
    createdAt: { type: 'datetime', columnType: 'timestamptz' },
    updatedAt: { type: 'datetime', columnType: 'timestamptz' },
  },
  uniques: [
    { name: 'message_session_idempotency_unique', properties: ['sessionId', 'idempotencyKey'] },
    { name: 'message_session_whatsapp_id_unique', properties: ['sessionId', 'whatsappMessageId', 'direction'] },
  ],
  indexes: [
    { name: 'message_session_seq_idx', properties: ['sessionId', 'seq'] },
    { name: 'message_session_chat_seq_idx', properties: ['sessionId', 'chat', 'seq'] },
    {
      name: 'message_queued_idx',
      expression: `create index "message_queued_idx" on "message" ("session_id", "seq") where "status" = 'QUEUED'`,
    },
    { name: 'message_created_idx', properties: ['createdAt'] },
  ],
});

/** One chat of a session: the other party, its last message and what is unread. */
export class Chat {
  [OptionalProps]?: 'unreadCount';
  sessionId!: string;
  chat!: string;
  tenantId!: string;
  lastMessageId!: string | null;
  lastActivityAt!: Date;
  /** Inbound messages since the session last sent to this chat. */
  unreadCount!: number;
  createdAt!: Date;
}

export const ChatSchema = new EntitySchema<Chat>({
  class: Chat,
  tableName: 'chat',
  properties: {
    sessionId: {
      kind: 'm:1',
      entity: () => Session,
      mapToPk: true,
      primary: true,
      deleteRule: 'cascade',
      fieldName: 'session_id',
    },
    chat: { type: 'text', primary: true },
    tenantId: { type: 'uuid' },
    lastMessageId: { type: 'uuid', nullable: true },
    lastActivityAt: { type: 'datetime', columnType: 'timestamptz' },
    unreadCount: { type: 'integer', default: 0 },
    createdAt: { type: 'datetime', columnType: 'timestamptz' },
  },
  indexes: [{ name: 'chat_session_activity_idx', properties: ['sessionId', 'lastActivityAt'] }],
});
