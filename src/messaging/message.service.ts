import { randomUUID } from 'node:crypto';
import { UniqueConstraintViolationException } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import { requireTenant } from '../identity/api-key.service.js';
import type { Principal } from '../identity/principal.js';
import type { Clock } from '../../lib/clock.js';
import { DomainError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { Message, type MessageStatus } from './message.entity.js';
import { MessageRepository, type MessageSession } from './message.repository.js';
import type { SendRoute, SessionRouting } from './session-routing.js';

const REPORTED: readonly MessageStatus[] = ['SENT', 'DELIVERED', 'READ', 'FAILED'];

/**
 * Messages through sessions. Minimal for now (the messaging capability
 * widens it): SendText routed to the session's worker, idempotent by the
 * tenant's key, and the statuses and inbound messages workers report.
 */
export class MessageService {
  constructor(
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly requestTimeoutMs: number,
    private readonly sessions: SessionRouting,
  ) {}

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
    const route = await this.sessions.routeForSend(em, requireTenant(principal), input.sessionId);
    const message = await this.claim(em, route, input);
    if (message.whatsappMessageId !== null) return message;
    try {
      const result = await this.sessions.request(route, { kind: 'sendText', to: input.to, text: input.text });
      if (result.kind !== 'messageId') throw new DomainError('INTERNAL', 'the worker did not return a message id');
      message.whatsappMessageId = result.messageId;
      // WhatsApp took it (it has an id): at least SENT, whatever receipt is still on its way.
      if (message.status === 'QUEUED') message.status = 'SENT';
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
    const message = await new MessageRepository(em).findForTenant(requireTenant(principal), id);
    if (!message) throw DomainError.notFound('message', id);
    return message;
  }

  /**
   * A worker's delivery report for a message of the session (the session
   * already fenced by the caller): statuses only move forward.
   */
  async recordStatus(
    em: EntityManager,
    session: MessageSession,
    whatsappId: string,
    status: string,
    now: Date,
  ): Promise<void> {
    const next = REPORTED.find((s) => s === status);
    if (!next) return;
    if (!(await new MessageRepository(em).advanceStatus(session, whatsappId, next, now))) {
      this.log.debug(
        { sessionId: session.id, whatsappId, status },
        'status not applied (older, or not sent through the API)',
      );
    }
  }

  /** A dispatched message went out (statuses only move forward) or failed (unless already further). */
  async recordDispatchOutcome(
    em: EntityManager,
    session: MessageSession,
    event:
      | { kind: 'messageSent'; messageId: string; whatsappMessageId: string }
      | { kind: 'messageFailed'; messageId: string; code: string; reason: string },
    now: Date,
  ): Promise<void> {
    const messages = new MessageRepository(em);
    const applied =
      event.kind === 'messageSent'
        ? await messages.markSent(session, event.messageId, event.whatsappMessageId, now)
        : await messages.markFailed(session, event.messageId, `${event.code}: ${event.reason}`, now);
    if (!applied) this.log.debug({ sessionId: session.id, messageId: event.messageId }, 'dispatch outcome not applied');
  }

  /** An inbound message; a repeated report is stored once. */
  async recordInbound(
    em: EntityManager,
    session: MessageSession,
    event: { messageId: string; from: string; text: string; at: Date },
    now: Date,
  ): Promise<void> {
    await new MessageRepository(em).insertInbound(session, event, now);
  }

  /** The message row this send works on: new, or the earlier attempt under the same key. */
  private async claim(
    em: EntityManager,
    route: SendRoute,
    input: { to: string; text: string; idempotencyKey: string },
  ): Promise<Message> {
    const key = input.idempotencyKey.trim() || null;
    const now = this.clock.now();
    const messages = new MessageRepository(em);
    if (key) {
      const earlier = await messages.findByIdempotencyKey(route.sessionId, key);
      if (earlier) return this.reuse(em, earlier, input, now);
    }
    const message = em.create(Message, {
      id: randomUUID(),
      tenantId: route.tenantId,
      sessionId: route.sessionId,
      direction: 'OUTBOUND',
      whatsappMessageId: null,
      chat: input.to,
      text: input.text,
      status: 'QUEUED',
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
      const winner = await messages.findByIdempotencyKey(route.sessionId, key);
      if (!winner) throw error;
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
    const inFlight = earlier.status === 'QUEUED' && now.getTime() - earlier.updatedAt.getTime() < this.requestTimeoutMs;
    if (inFlight) {
      throw new DomainError('ABORTED', 'a send with this idempotency key is still in progress; retry shortly');
    }
    earlier.status = 'QUEUED';
    earlier.updatedAt = now;
    await em.flush();
    return earlier;
  }
}
