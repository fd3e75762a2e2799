import { randomUUID } from 'node:crypto';
import { UniqueConstraintViolationException } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import { requireTenant } from '../identity/api-key.service.js';
import type { Principal } from '../identity/principal.js';
import type { Clock } from '../../lib/clock.js';
import { DomainError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { Session } from '../sessions/session.entity.js';
import type { SessionService } from '../sessions/session.service.js';
import { SessionRepository } from '../sessions/session.repository.js';
import { Message, type MessageStatus } from './message.entity.js';

/** Outbound statuses only move forward; FAILED ends a message. */
const RANK: Record<MessageStatus, number> = { PENDING: 0, SENT: 1, DELIVERED: 2, READ: 3, FAILED: 4, RECEIVED: 0 };
const REPORTED: readonly MessageStatus[] = ['SENT', 'DELIVERED', 'READ', 'FAILED'];

/**
 * Messages through sessions. Minimal for now (the messaging capability
 * widens it): SendText routed to the session's worker, idempotent by the
 * tenant's key, and the statuses and inbound messages workers report.
 */
export class MessageService {
  private sessions: SessionService | undefined;

  constructor(
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly requestTimeoutMs: number,
  ) {}

  /** Set by the composition root (the two services call each other). */
  attach(sessions: SessionService): void {
    this.sessions = sessions;
  }

  /**
   * Sends through the worker running the session. With an idempotency key a
   * retry returns the first attempt's message instead of sending again; an
   * attempt that failed before reaching WhatsApp (or whose answer never came
   * back within the deadline) is tried again under the same key.
   */
  async sendText(
    em: EntityManager,
    principal: Principal,
    input: { sessionId: string; to: string; text: string; idempotencyKey: string },
  ): Promise<Message> {
    const sessions = this.requireSessions();
    const tenantId = requireTenant(principal);
    const session = await new SessionRepository(em).findForTenant(tenantId, input.sessionId);
    const route = sessions.routeForSend(session);
    const message = await this.claim(em, session, input);
    if (message.whatsappMessageId !== null) return message;
    try {
      const result = await sessions.request(route.workerId, session, {
        kind: 'sendText',
        to: input.to,
        text: input.text,
      });
      if (result.kind !== 'messageId') throw new DomainError('INTERNAL', 'the worker did not return a message id');
      message.whatsappMessageId = result.messageId;
      message.updatedAt = this.clock.now();
      await em.flush();
      return message;
    } catch (error) {
      // UNAVAILABLE: unknown whether it went out, so the row stays PENDING
      // and a retry with the key after the deadline sends it again. Any other
      // error is the worker's clear refusal: nothing was sent.
      if (!(error instanceof DomainError) || error.code !== 'UNAVAILABLE') {
        message.status = 'FAILED';
        message.updatedAt = this.clock.now();
        await em.flush();
      }
      throw error;
    }
  }

  async get(em: EntityManager, principal: Principal, id: string): Promise<Message> {
    const message = await em.findOne(Message, { id, tenantId: requireTenant(principal) });
    if (!message) throw DomainError.notFound('message', id);
    return message;
  }

  /**
   * A worker's delivery report for a message of the session: one statement,
   * and statuses only move forward (a late SENT never overwrites READ).
   */
  async recordStatus(em: EntityManager, session: Session, whatsappId: string, status: string, now: Date) {
    const next = REPORTED.find((s) => s === status);
    if (!next) return;
    const rank = `case "status" when 'PENDING' then 0 when 'SENT' then 1 when 'DELIVERED' then 2 when 'READ' then 3 else 4 end`;
    const updated = await em.getConnection().execute<{ affectedRows: number }>(
      `update "message" set "status" = ?, "updated_at" = ?
        where "session_id" = ? and "whatsapp_message_id" = ? and "direction" = 'OUTBOUND'
          and "status" <> 'FAILED' and ${rank} < ?`,
      [next, now, session.id, whatsappId, RANK[next]],
      'run',
      em.getTransactionContext(),
    );
    if (updated.affectedRows === 0) {
      this.log.debug(
        { sessionId: session.id, whatsappId, status },
        'status not applied (older, or not sent through the API)',
      );
    }
  }

  /** An inbound message; a repeated report is stored once. */
  async recordInbound(
    em: EntityManager,
    session: Session,
    event: { messageId: string; from: string; text: string; at: Date },
    now: Date,
  ): Promise<void> {
    await em.getConnection().execute(
      `insert into "message" ("id", "tenant_id", "session_id", "direction", "whatsapp_message_id", "chat", "text", "status", "idempotency_key", "created_at", "updated_at")
       values (?, ?, ?, 'INBOUND', ?, ?, ?, 'RECEIVED', null, ?, ?)
       on conflict ("session_id", "whatsapp_message_id", "direction") do nothing`,
      [randomUUID(), session.tenantId, session.id, event.messageId, event.from, event.text, event.at, now],
      'run',
      em.getTransactionContext(),
    );
  }

  /** The message row this send works on: new, or the earlier attempt under the same key. */
  private async claim(
    em: EntityManager,
    session: Session,
    input: { to: string; text: string; idempotencyKey: string },
  ): Promise<Message> {
    const key = input.idempotencyKey.trim() || null;
    const now = this.clock.now();
    if (key) {
      const earlier = await em.findOne(Message, { sessionId: session.id, idempotencyKey: key });
      if (earlier) return this.reuse(em, earlier, input, now);
    }
    const message = em.create(Message, {
      id: randomUUID(),
      tenantId: session.tenantId,
      sessionId: session.id,
      direction: 'OUTBOUND',
      whatsappMessageId: null,
      chat: input.to,
      text: input.text,
      status: 'PENDING',
      idempotencyKey: key,
      createdAt: now,
      updatedAt: now,
    });
    try {
      await em.flush();
      return message;
    } catch (error) {
      if (!(error instanceof UniqueConstraintViolationException) || !key) throw error;
      // A concurrent retry with the same key won the insert.
      em.clear();
      const winner = await em.findOneOrFail(Message, { sessionId: session.id, idempotencyKey: key });
      return this.reuse(em, winner, input, now);
    }
  }

  private async reuse(
    em: EntityManager,
    earlier: Message,
    input: { to: string; text: string },
    now: Date,
  ): Promise<Message> {
    if (earlier.chat !== input.to || earlier.text !== input.text) {
      throw new DomainError(
        'INVALID_ARGUMENT',
        'this idempotency key was used for a different message; use a new key for a new message',
      );
    }
    if (earlier.whatsappMessageId !== null) return earlier;
    const inFlight =
      earlier.status === 'PENDING' && now.getTime() - earlier.updatedAt.getTime() < this.requestTimeoutMs;
    if (inFlight) {
      throw new DomainError('ABORTED', 'a send with this idempotency key is still in progress; retry shortly');
    }
    earlier.status = 'PENDING';
    earlier.updatedAt = now;
    await em.flush();
    return earlier;
  }

  private requireSessions(): SessionService {
    if (!this.sessions) throw new Error('MessageService used before attach()');
    return this.sessions;
  }
}
