import { randomUUID } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/postgresql';
import { Message, type MessageStatus } from './message.entity.js';

/** Outbound statuses only move forward; FAILED ends a message. */
export const STATUS_RANK: Record<MessageStatus, number> = {
  QUEUED: 0,
  SENT: 1,
  DELIVERED: 2,
  READ: 3,
  FAILED: 4,
  RECEIVED: 0,
};

/** The session a message belongs to, as far as storing it goes. */
export interface MessageSession {
  id: string;
  tenantId: string;
}

/** Persistence of messages; every tenant-facing read is scoped by tenant. */
export class MessageRepository {
  constructor(private readonly em: EntityManager) {}

  findForTenant(tenantId: string, id: string): Promise<Message | null> {
    return this.em.findOne(Message, { id, tenantId });
  }

  findByIdempotencyKey(sessionId: string, key: string): Promise<Message | null> {
    return this.em.findOne(Message, { sessionId, idempotencyKey: key });
  }

  /**
   * A worker's delivery report: one statement, and only forward (a late SENT
   * never overwrites READ, nothing overwrites FAILED). Returns whether it applied.
   */
  async advanceStatus(session: MessageSession, whatsappId: string, status: MessageStatus, now: Date): Promise<boolean> {
    const rank = `case "status" when 'QUEUED' then 0 when 'SENT' then 1 when 'DELIVERED' then 2 when 'READ' then 3 else 4 end`;
    const updated = await this.em.getConnection().execute<{ affectedRows: number }>(
      `update "message" set "status" = ?, "updated_at" = ?
        where "session_id" = ? and "whatsapp_message_id" = ? and "direction" = 'OUTBOUND'
          and "status" <> 'FAILED' and ${rank} < ?`,
      [status, now, session.id, whatsappId, STATUS_RANK[status]],
      'run',
      this.em.getTransactionContext(),
    );
    return updated.affectedRows > 0;
  }

  /** Our message went out with WhatsApp's id: SENT unless a receipt already took it further. */
  async markSent(session: MessageSession, id: string, whatsappId: string, now: Date): Promise<boolean> {
    const updated = await this.em.getConnection().execute<{ affectedRows: number }>(
      `update "message" set "whatsapp_message_id" = ?, "status" = case when "status" = 'QUEUED' then 'SENT' else "status" end,
              "sent_at" = coalesce("sent_at", ?), "updated_at" = ?
        where "id" = ? and "session_id" = ? and "direction" = 'OUTBOUND' and "status" <> 'FAILED'`,
      [whatsappId, now, now, id, session.id],
      'run',
      this.em.getTransactionContext(),
    );
    return updated.affectedRows > 0;
  }

  /** Our message could not be sent; only a message not yet sent can fail. */
  async markFailed(session: MessageSession, id: string, reason: string, now: Date): Promise<boolean> {
    const updated = await this.em.getConnection().execute<{ affectedRows: number }>(
      `update "message" set "status" = 'FAILED', "failure_reason" = ?, "failed_at" = ?, "updated_at" = ?
        where "id" = ? and "session_id" = ? and "direction" = 'OUTBOUND' and "status" = 'QUEUED'`,
      [reason, now, now, id, session.id],
      'run',
      this.em.getTransactionContext(),
    );
    return updated.affectedRows > 0;
  }

  /** Stores an inbound message once, however often it is reported. */
  async insertInbound(
    session: MessageSession,
    event: { messageId: string; from: string; text: string; at: Date },
    now: Date,
  ): Promise<void> {
    await this.em.getConnection().execute(
      `insert into "message" ("id", "tenant_id", "session_id", "direction", "whatsapp_message_id", "chat", "text", "status", "idempotency_key", "created_at", "updated_at")
       values (?, ?, ?, 'INBOUND', ?, ?, ?, 'RECEIVED', null, ?, ?)
       on conflict ("session_id", "whatsapp_message_id", "direction") do nothing`,
      [randomUUID(), session.tenantId, session.id, event.messageId, event.from, event.text, event.at, now],
      'run',
      this.em.getTransactionContext(),
    );
  }
}
