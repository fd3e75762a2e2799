import type { Session } from './session.entity.js';
import type { SessionStanding } from './session.state.js';

/** The part of a stored session the lifecycle rules read (session.state.ts). */
export function standingOf(session: Session, hasAuthState: boolean): SessionStanding {
  return {
    state: session.status,
    reason: session.statusReason,
    epoch: session.epoch,
    workerId: session.workerId,
    hasAuthState,
    qr:
      session.qrPayload !== null && session.qrExpiresAt !== null
        ? { payload: session.qrPayload, expiresAt: session.qrExpiresAt, sequence: session.qrSequence }
        : null,
    account: session.account,
    failedAttempts: session.failedAttempts,
    placeAfter: session.placeAfter,
  };
}

/**
 * Stores what the rules decided on the entity, with the bookkeeping that is
 * not a rule: when it started waiting (queue order) and when it changed.
 */
export function applyStanding(session: Session, next: SessionStanding, now: Date): void {
  if (next.state === 'PENDING' && session.status !== 'PENDING') session.pendingSince = now;
  if (next.state !== 'PENDING') session.pendingSince = null;
  session.status = next.state;
  session.statusReason = next.reason;
  session.epoch = next.epoch;
  session.workerId = next.workerId;
  session.qrPayload = next.qr?.payload ?? null;
  session.qrExpiresAt = next.qr?.expiresAt ?? null;
  session.qrSequence = next.qr?.sequence ?? session.qrSequence;
  session.account = next.account;
  session.failedAttempts = next.failedAttempts;
  session.placeAfter = next.placeAfter;
  session.updatedAt = now;
}
