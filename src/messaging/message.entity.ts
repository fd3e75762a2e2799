import { EntitySchema } from '@mikro-orm/core';
import { Session } from '../sessions/session.entity.js';

export type MessageDirection = 'OUTBOUND' | 'INBOUND';
/** How far a message got; inbound messages are RECEIVED. */
export type MessageStatus = 'PENDING' | 'SENT' | 'DELIVERED' | 'READ' | 'FAILED' | 'RECEIVED';

/** One message through a session, with its delivery status. */
export class Message {
  id!: string;
  tenantId!: string;
  sessionId!: string;
  direction!: MessageDirection;
  /** WhatsApp's id; null until the worker has sent it. */
  whatsappMessageId!: string | null;
  chat!: string;
  text!: string;
  status!: MessageStatus;
  /** The tenant's retry key for a send; unique per session. */
  idempotencyKey!: string | null;
  createdAt!: Date;
  updatedAt!: Date;
}

export const MessageSchema = new EntitySchema<Message>({
  class: Message,
  tableName: 'message',
  properties: {
    id: { type: 'uuid', primary: true },
    tenantId: { type: 'uuid' },
    sessionId: { kind: 'm:1', entity: () => Session, mapToPk: true, deleteRule: 'cascade', fieldName: 'session_id' },
    direction: { type: 'text' },
    whatsappMessageId: { type: 'text', nullable: true },
    chat: { type: 'text' },
    text: { type: 'text' },
    status: { type: 'text' },
    idempotencyKey: { type: 'text', nullable: true },
    createdAt: { type: 'datetime', columnType: 'timestamptz' },
    updatedAt: { type: 'datetime', columnType: 'timestamptz' },
  },
  uniques: [
    { name: 'message_session_idempotency_unique', properties: ['sessionId', 'idempotencyKey'] },
    { name: 'message_session_whatsapp_id_unique', properties: ['sessionId', 'whatsappMessageId', 'direction'] },
  ],
});
