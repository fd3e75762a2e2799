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
}
