import type { EntityManager, FilterQuery } from '@mikro-orm/postgresql';
import { DomainError } from '../../lib/errors.js';
import { decodePageToken, encodePageToken, normalisePageSize } from '../fleet/page-token.js';
import { requireTenant } from '../identity/api-key.service.js';
import type { Principal } from '../identity/principal.js';
import { SessionRepository } from '../sessions/session.repository.js';
import { Chat, Message, type MessageDirection, type MessageStatus } from './message.entity.js';
import { chatId } from './chat-id.js';

/** What ListMessages filters on; every field optional but the session. */
export interface MessageQuery {
  sessionId: string;
  chat?: string;
  direction?: MessageDirection;
  statuses?: readonly MessageStatus[];
  /** Created at or after. */
  createdAfter?: Date;
  /** Created strictly before. */
  createdBefore?: Date;
  pageSize: number;
  pageToken: string;
}

/** A chat with its last message, as ListChats shows it. */
export interface ChatView {
  chat: Chat;
  lastMessage: Message | null;
}

const MESSAGE_PAGE = { default: 50, max: 500 };
const CHAT_PAGE = { default: 50, max: 500 };

/**
 * Reading back a session's history: messages newest first, chats by last
 * activity, one message by id. Every read is scoped to the caller's tenant,
 * so another tenant's session or message is NOT_FOUND, never revealed.
 * Message pages are a keyset on the message's sequence number: messages
 * that arrive while a client pages are newer than its cursor, so pages
 * neither repeat nor skip anything.
 */
export class MessageHistory {
  async get(em: EntityManager, principal: Principal, id: string): Promise<Message> {
    const message = await em.findOne(Message, { id, tenantId: requireTenant(principal) });
    if (!message) throw DomainError.notFound('message', id);
    return message;
  }

  async listMessages(
    em: EntityManager,
    principal: Principal,
    query: MessageQuery,
  ): Promise<{ messages: Message[]; nextPageToken: string }> {
    const tenantId = requireTenant(principal);
    await new SessionRepository(em).findForTenant(tenantId, query.sessionId);
    const pageSize = normalisePageSize(query.pageSize, MESSAGE_PAGE);
    const before = decodeMessageToken(query.pageToken);
    const where: FilterQuery<Message> = { tenantId, sessionId: query.sessionId };
    if (query.chat) where.chat = chatId(query.chat);
    if (query.direction) where.direction = query.direction;
    if (query.statuses && query.statuses.length > 0) where.status = { $in: [...query.statuses] };
    if (query.createdAfter || query.createdBefore) {
      where.createdAt = {
        ...(query.createdAfter ? { $gte: query.createdAfter } : {}),
        ...(query.createdBefore ? { $lt: query.createdBefore } : {}),
      };
    }
    if (before !== undefined) where.seq = { $lt: before };
    const found = await em.find(Message, where, { orderBy: { seq: 'desc' }, limit: pageSize + 1 });
    const messages = found.slice(0, pageSize);
    const last = messages.at(-1);
    return {
      messages,
      nextPageToken: found.length > pageSize && last ? encodePageToken(`m:${last.seq}`) : '',
    };
  }

  async listChats(
    em: EntityManager,
    principal: Principal,
    query: { sessionId: string; pageSize: number; pageToken: string },
  ): Promise<{ chats: ChatView[]; nextPageToken: string }> {
    const tenantId = requireTenant(principal);
    await new SessionRepository(em).findForTenant(tenantId, query.sessionId);
    const pageSize = normalisePageSize(query.pageSize, CHAT_PAGE);
    const after = decodeChatToken(query.pageToken);
    const qb = em
      .createQueryBuilder(Chat, 'c')
      .select('*')
      .where({ tenantId, sessionId: query.sessionId })
      .orderBy({ lastActivityAt: 'desc', chat: 'asc' })
      .limit(pageSize + 1);
    // Most recent first, ties by chat: the row after the cursor is older, or as old with a later chat.
    if (after)
      qb.andWhere('(c.last_activity_at < ? or (c.last_activity_at = ? and c.chat > ?))', [
        after.at,
        after.at,
        after.chat,
      ]);
    const found = await qb.getResult();
    const chats = found.slice(0, pageSize);
    const lastIds = chats.map((c) => c.lastMessageId).filter((id): id is string => id !== null);
    const lastMessages = lastIds.length > 0 ? await em.find(Message, { id: { $in: lastIds }, tenantId }) : [];
    const byId = new Map(lastMessages.map((m) => [m.id, m]));
    const last = chats.at(-1);
    return {
      chats: chats.map((chat) => ({
        chat,
        lastMessage: chat.lastMessageId ? (byId.get(chat.lastMessageId) ?? null) : null,
      })),
      nextPageToken:
        found.length > pageSize && last
          ? encodePageToken(JSON.stringify([last.lastActivityAt.toISOString(), last.chat]))
          : '',
    };
  }
}

const NOT_OURS = 'not a page token returned by this API';

function decodeMessageToken(token: string): string | undefined {
  const decoded = decodePageToken(token);
  if (decoded === undefined) return undefined;
  const match = /^m:(\d{1,19})$/.exec(decoded);
  if (!match?.[1]) throw DomainError.invalidArgument('page_token', NOT_OURS);
  return match[1];
}

function decodeChatToken(token: string): { at: Date; chat: string } | undefined {
  const decoded = decodePageToken(token);
  if (decoded === undefined) return undefined;
  try {
    const parsed: unknown = JSON.parse(decoded);
    if (
      Array.isArray(parsed) &&
      parsed.length === 2 &&
      typeof parsed[0] === 'string' &&
      typeof parsed[1] === 'string'
    ) {
      const at = new Date(parsed[0]);
      if (/^\d{4}-\d{2}-\d{2}T/.test(parsed[0]) && !Number.isNaN(at.getTime())) return { at, chat: parsed[1] };
    }
  } catch {
    // refused below
  }
  throw DomainError.invalidArgument('page_token', NOT_OURS);
}
