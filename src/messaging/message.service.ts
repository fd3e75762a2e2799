import type { EntityManager } from '@mikro-orm/postgresql';
import { requireTenant } from '../identity/api-key.service.js';
import type { Principal } from '../identity/principal.js';
import type { EventLog } from '../events/event-log.js';
import type { Clock } from '../../lib/clock.js';
import { chatId } from './chat-id.js';
import { DomainError } from '../../lib/errors.js';
import type { Message } from './message.entity.js';
import { MessageRepository } from './message.repository.js';
import { query, rowToMessage, type MessageRow } from './message.sql.js';
import type { SendRoute, SessionRouting } from './session-routing.js';

/** The Connect JSON of a message, the payload of message.* events (messaging/message-mapping.handler.ts). */
export type MessageJson = (message: Message) => unknown;

/** What accepting a message asks of the dispatcher: wake the replica holding the worker, and whether it is saturated. */
export interface DispatchWakeups {
  wake(workerId: string): void;
  /** The worker has more messages dispatched and unconfirmed than allowed. */
  saturated(workerId: string): boolean;
}

/** What MessageService works with besides the clock. */
export interface MessageServiceDependencies {
  sessions: SessionRouting;
  events: EventLog;
  toJson: MessageJson;
  dispatch: DispatchWakeups;
  /** Message ids and generated idempotency keys. */
  newId: () => string;
  limits: { queuePerSession: number };
}

/** How long a refused sender is told to wait: the queue drains at the worker's pace, re-checked each second. */
const RETRY_AFTER_SECONDS = 1;

const INSERT_QUEUED = `insert into "message" ("id", "tenant_id", "session_id", "direction", "whatsapp_message_id", "chat", "sender", "type", "text", "status", "idempotency_key", "created_at", "updated_at")
  values (?, ?, ?, 'OUTBOUND', null, ?, ?, 'text', ?, 'QUEUED', ?, ?, ?)
  on conflict ("session_id", "idempotency_key") do nothing
  returning *`;

/**
 * Sending: SendText accepts a message durably (QUEUED, with its message.queued
 * event, in one transaction) and returns at once; the dispatcher of the
 * replica holding the session's worker takes it from there.
 */
export class MessageService {
  constructor(
    private readonly clock: Clock,
    private readonly deps: MessageServiceDependencies,
  ) {}

  /**
   * Accepts a text for the session. The same idempotency key for the same
   * session returns the first message (never a second send); a different
   * recipient or text under a used key is INVALID_ARGUMENT. Refused with
   * RESOURCE_EXHAUSTED (and retry-after) while the session's queue or its
   * worker's unconfirmed messages are at their limits.
   */
  async sendText(
    em: EntityManager,
    principal: Principal,
    input: { sessionId: string; to: string; text: string; idempotencyKey: string },
  ): Promise<Message> {
    const route = await this.deps.sessions.routeForSend(em, requireTenant(principal), input.sessionId);
    input = { ...input, to: chatId(input.to) };
    const given = input.idempotencyKey.trim();
    if (given) {
      const earlier = await this.byKey(em, route.sessionId, given);
      if (earlier) return sameMessage(earlier, input);
    }
    if (this.deps.dispatch.saturated(route.workerId)) {
      throw backPressure("the session's worker has too many messages waiting for confirmation");
    }
    const key = given || this.deps.newId();
    const accepted = await em.transactional((tx) => this.insert(tx, route, input, key));
    if (accepted.announcement) {
      void this.deps.events.announce(accepted.announcement).catch(() => undefined);
      this.deps.dispatch.wake(route.workerId);
    }
    return accepted.message;
  }

  async get(em: EntityManager, principal: Principal, id: string): Promise<Message> {
    const message = await new MessageRepository(em).findForTenant(requireTenant(principal), id);
    if (!message) throw DomainError.notFound('message', id);
    return message;
  }

  private async insert(tx: EntityManager, route: SendRoute, input: { to: string; text: string }, key: string) {
    const limit = this.deps.limits.queuePerSession;
    // Counted through the partial index of queued messages, and never past the limit.
    const [queued] = await query<{ n: number }>(
      tx,
      `select count(*)::int as "n" from (select 1 from "message" where "session_id" = ? and "status" = 'QUEUED' limit ?) q`,
      [route.sessionId, limit],
    );
    if ((queued?.n ?? 0) >= limit) throw backPressure(`the session already has ${limit} messages queued`);
    const now = this.clock.now();
    const [row] = await query<MessageRow>(tx, INSERT_QUEUED, [
      this.deps.newId(),
      route.tenantId,
      route.sessionId,
      input.to,
      route.sender,
      input.text,
      key,
      now,
      now,
    ]);
    if (!row) {
      // A concurrent retry under the same key committed first (the insert waited for it).
      const winner = await this.byKey(tx, route.sessionId, key);
      if (!winner) throw new DomainError('ABORTED', 'a send with this idempotency key was in progress; retry');
      return { message: sameMessage(winner, input), announcement: undefined };
    }
    const message = rowToMessage(row);
    const announcement = await this.deps.events.append(
      tx,
      [
        {
          tenantId: message.tenantId,
          type: 'message.queued',
          sessionId: message.sessionId,
          occurredAt: now,
          data: this.deps.toJson(message),
        },
      ],
      now,
    );
    return { message, announcement };
  }

  private async byKey(em: EntityManager, sessionId: string, key: string): Promise<Message | undefined> {
    const [row] = await query<MessageRow>(
      em,
      `select * from "message" where "session_id" = ? and "idempotency_key" = ?`,
      [sessionId, key],
    );
    return row ? rowToMessage(row) : undefined;
  }
}

function sameMessage(earlier: Message, input: { to: string; text: string }): Message {
  if (earlier.chat !== input.to || earlier.text !== input.text) {
    throw new DomainError(
      'INVALID_ARGUMENT',
      'this idempotency key was used for a different message; use a new key for a new message',
      { details: { field: 'idempotency_key' } },
    );
  }
  return earlier;
}

function backPressure(why: string): DomainError {
  return new DomainError('RESOURCE_EXHAUSTED', `${why}; retry in ${RETRY_AFTER_SECONDS} s`, {
    details: { 'retry-after': RETRY_AFTER_SECONDS },
  });
}
