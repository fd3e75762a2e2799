import type { Session } from './session.entity.js';
import type { SessionStatus } from './session.entity.js';
import type { SessionStanding } from './session.state.js';

/**
 * What one application of the rules changed, as the event log records it
 * (session-events.ts): the status before and after, and a QR code newly shown.
 */
export interface StandingChange {
  tenantId: string;
  sessionId: string;
  /** Null for a session just created. */
  previousStatus: SessionStatus | null;
  status: SessionStatus;
  reason: string;
  phoneNumber: string;
  /** A QR code shown by this change (a new one, not the one already on show). */
  newQr: { payload: string; expiresAt: Date } | null;
}

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
export function applyStanding(session: Session, next: SessionStanding, now: Date): StandingChange {
  const previousStatus = session.status;
  const newQr =
    next.qr && (next.qr.payload !== session.qrPayload || next.qr.sequence !== session.qrSequence)
      ? { payload: next.qr.payload, expiresAt: next.qr.expiresAt }
      : null;
  // A new link (a QR scan or pairing code, or another account): the send governor's warm-up starts over.
  if (next.account && (session.status === 'SCAN_QR' || session.account?.jid !== next.account.jid))
    session.linkedAt = now;
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
  return {
    tenantId: session.tenantId,
    sessionId: session.id,
    previousStatus,
    status: session.status,
    reason: session.statusReason,
    phoneNumber: session.account?.phoneNumber ?? '',
    newQr,
  };
}
