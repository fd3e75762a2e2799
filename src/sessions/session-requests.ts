import type { EntityManager } from '@mikro-orm/postgresql';
import type { Clock } from '../../lib/clock.js';
import { DomainError, type DomainErrorCode } from '../../lib/errors.js';
import type { CommandSender, RequestAction, RequestResult } from '../fleet/fleet.types.js';
import { planSessionCommand } from './session-command.state.js';
import { standingOf } from './session-standing.js';
import { SessionRepository } from './session.repository.js';

/** Who a tenant's request goes to: the session, its attempt, and the worker running it. */
export interface RequestTarget {
  sessionId: string;
  epoch: number;
  workerId: string;
}

/**
 * Tenant requests to the worker running a session (send a message, a
 * pairing code, the sandbox's simulated phone), with the request deadline.
 * Also answers messaging's routing port (messaging/session-routing.ts).
 */
export class SessionRequests {
  constructor(
    private readonly commands: CommandSender,
    private readonly clock: Clock,
    private readonly requestTimeoutMs: number,
  ) {}

  /** The tenant's session if it can send now: NOT_FOUND for another tenant's, FAILED_PRECONDITION unless WORKING. */
  async routeForSend(
    em: EntityManager,
    tenantId: string,
    sessionId: string,
  ): Promise<RequestTarget & { tenantId: string; sender: string }> {
    const session = await new SessionRepository(em).findForTenant(tenantId, sessionId);
    const plan = planSessionCommand(standingOf(session, false), { kind: 'send' });
    const effect = plan.effects.find((e) => e.kind === 'sendOnWorker');
    if (!effect) throw new DomainError('INTERNAL', 'no send effect planned');
    return {
      sessionId: session.id,
      tenantId: session.tenantId,
      workerId: effect.workerId,
      epoch: effect.epoch,
      sender: session.account?.phoneNumber ?? '',
    };
  }

  /**
   * Sends a request to the worker running the session and waits for its
   * answer within the request deadline. A worker that cannot be reached is
   * UNAVAILABLE (the caller may retry); the worker's own refusals keep
   * their code (INVALID_ARGUMENT for a bad recipient...).
   */
  async request(target: RequestTarget, action: RequestAction): Promise<Exclude<RequestResult, { kind: 'error' }>> {
    const deadline = new Date(this.clock.now().getTime() + this.requestTimeoutMs);
    const outcome = await this.commands.sendCommand(
      target.workerId,
      {
        kind: 'request',
        sessionId: target.sessionId,
        epoch: target.epoch,
        deadline: deadline.toISOString(),
        action,
      },
      this.requestTimeoutMs,
    );
    if (!outcome.delivered || !outcome.result) {
      throw new DomainError('UNAVAILABLE', `the session's worker did not answer (${outcome.detail}); retry`, {
        details: { retryable: true },
      });
    }
    if (outcome.result.kind === 'error') {
      throw new DomainError(domainCode(outcome.result.code), outcome.result.message);
    }
    return outcome.result;
  }
}

const CODES: readonly DomainErrorCode[] = [
  'INVALID_ARGUMENT',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'FAILED_PRECONDITION',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'UNAVAILABLE',
  'DEADLINE_EXCEEDED',
  'ABORTED',
];

/** A worker's error code as ours; anything unknown is INTERNAL (never trust a worker to pick UNAUTHENTICATED). */
function domainCode(code: string): DomainErrorCode {
  return CODES.find((c) => c === code) ?? 'INTERNAL';
}

/** An answer of a kind the request does not expect: the worker is broken. */
export function unexpectedResult(result: RequestResult): DomainError {
  return new DomainError('INTERNAL', `the worker answered with an unexpected result (${result.kind})`);
}
