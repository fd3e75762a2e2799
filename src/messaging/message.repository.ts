import type { EntityManager } from '@mikro-orm/postgresql';
import { Message } from './message.entity.js';

/** Persistence of messages; every tenant-facing read is scoped by tenant. */
export class MessageRepository {
  constructor(private readonly em: EntityManager) {}

  findForTenant(tenantId: string, id: string): Promise<Message | null> {
    return this.em.findOne(Message, { id, tenantId });
  }
}
