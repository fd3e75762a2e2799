import {
  checked,
  endAttempt,
  fenceAttempt,
  isAssigned,
  placeAgain,
  retryDelayMs,
  stay,
  unexpected,
  WAITING,
  type EventContext,
  type SessionEndReason,
  type SessionEvent,
  type SessionEventOutcome,
  type SessionPlan,
  type SessionStanding,
} from './session.state.js';

/**
 * Applies a scheduler, worker or fleet event (pure). An event from an
 * earlier attempt, or a worker's report from a worker that does not hold
 * the session, is not an error but an outcome: { outcome: 'stale' }, which
 * the caller drops (late reports are normal after every stop and
 * reassignment). An epoch later than the session's means the caller read
 * the session before it moved on: ABORTED, read it again and retry
 * (dropping it would lose a current event). A current event the state does
 * not expect is a protocol violation: FAILED_PRECONDITION, nothing changes.
 *
 * - placed: PENDING -> STARTING on that worker, which is told to start it.
 * - noCapacity: stays PENDING; the explanation becomes the reason.
 * - engineQr: STARTING -> SCAN_QR with the code; repeated in SCAN_QR (codes
 *   rotate) only the code changes.
 * - engineConnected: STARTING or SCAN_QR -> WORKING with the linked account,
 *   and the count of failed attempts starts over; repeated, the account is
 *   refreshed (a reconnecting worker re-reports what it runs).
 * - engineEnded, which always ends the attempt:
 *   STOPPED (the worker stopped it unasked, e.g. draining or shutting down)
 *   and CONNECTION_LOST -> PENDING, placed again, since it is meant to run;
 *   a CONNECTION_LOST also counts a failed attempt and holds the next
 *   placement back (1 s doubling to 5 min, jittered) so a session that keeps
 *   failing does not hammer WhatsApp or the fleet;
 *   QR_TIMEOUT -> STOPPED (not in WORKING); LOGGED_OUT -> LOGGED_OUT with the
 *   auth state wiped; CONNECTION_REPLACED -> FAILED ("ownership conflict"),
 *   never restarted automatically: two workers must not fight over an account.
 * - released: the worker no longer holds it -> PENDING, placed again.
 * - workerLost FAILED -> PENDING, placed again (no stop can reach the worker).
 *   DRAINED: the worker is alive and is told to stop the session; it stays
 *   where it is until the worker's "ended: STOPPED" places it again, so the
 *   account is never connected from two workers at once.
 */
export function applySessionEvent(
  session: SessionStanding,
  event: SessionEvent,
  context: EventContext,
): SessionEventOutcome {
  const holder = event.kind === 'placed' || event.kind === 'noCapacity' ? undefined : event.workerId;
  const fence = fenceAttempt(
    session,
    holder === undefined ? { epoch: event.epoch } : { epoch: event.epoch, workerId: holder },
  );
  if (!fence.current) return { outcome: 'stale', reason: fence.reason };
  return { outcome: 'applied', ...checked(session, planEvent(session, event, context)) };
}

function planEvent(session: SessionStanding, event: SessionEvent, context: EventContext): SessionPlan {
  const { state } = session;
  switch (event.kind) {
    case 'placed':
      if (state !== 'PENDING') throw unexpected(session, 'a placement');
      return {
        next: { ...session, state: 'STARTING', reason: '', workerId: event.workerId },
        effects: [{ kind: 'startOnWorker', workerId: event.workerId, epoch: session.epoch }],
      };
    case 'noCapacity':
      if (state !== 'PENDING') throw unexpected(session, 'a "no capacity" answer');
      return stay({ ...session, reason: event.explanation || WAITING }, []);
    case 'engineQr':
      if (state === 'STARTING')
        return { next: { ...session, state: 'SCAN_QR', reason: '', qr: event.qr }, effects: [] };
      if (state === 'SCAN_QR') return stay({ ...session, qr: event.qr }, []);
      throw unexpected(session, 'a QR code');
    case 'engineConnected': {
      const linked = { ...session, account: event.account, failedAttempts: 0, placeAfter: null };
      if (state === 'STARTING' || state === 'SCAN_QR') {
        return { next: { ...linked, state: 'WORKING', reason: '' }, effects: [] };
      }
      if (state === 'WORKING') return stay(linked, []);
      throw unexpected(session, 'a connection');
    }
    case 'engineEnded':
      return planEnd(session, event.reason, event.detail, context);
    case 'released':
      if (!isAssigned(state)) throw unexpected(session, 'a release');
      return placeAgain(session, 'the worker released it; placing it again');
    case 'workerLost': {
      const workerId = session.workerId;
      if (!isAssigned(state) || workerId === null) throw unexpected(session, 'a lost worker');
      if (event.cause === 'FAILED') return placeAgain(session, 'its worker failed; placing it again');
      return stay({ ...session, reason: 'its worker is draining; moving it' }, [
        { kind: 'stopOnWorker', workerId, epoch: session.epoch },
      ]);
    }
  }
}

/** An end the worker reported for the current attempt: the worker is done with it, so nothing is sent back. */
function planEnd(
  session: SessionStanding,
  reason: SessionEndReason,
  detail: string,
  context: EventContext,
): SessionPlan {
  if (!isAssigned(session.state)) throw unexpected(session, 'an end');
  switch (reason) {
    case 'STOPPED':
      return placeAgain(session, 'the worker stopped it; placing it again');
    case 'CONNECTION_LOST': {
      const failedAttempts = session.failedAttempts + 1;
      const again = placeAgain(
        session,
        `the connection was lost; placing it again (attempt ${failedAttempts} failed: ${detail || 'connection lost'})`,
      );
      const placeAfter = new Date(context.now.getTime() + retryDelayMs(failedAttempts, context.jitter));
      return { next: { ...again.next, failedAttempts, placeAfter }, effects: again.effects };
    }
    case 'QR_TIMEOUT':
      if (session.state === 'WORKING') throw unexpected(session, 'a QR timeout');
      return endAttempt(session, 'STOPPED', 'the QR code was not scanned in time', []);
    case 'LOGGED_OUT':
      return endAttempt(session, 'LOGGED_OUT', 'the device was unlinked from the phone', [{ kind: 'wipeAuthState' }]);
    case 'CONNECTION_REPLACED':
      return endAttempt(
        session,
        'FAILED',
        'ownership conflict: another device or worker connected with the same credentials; start it again when only one should run',
        [],
      );
  }
}
