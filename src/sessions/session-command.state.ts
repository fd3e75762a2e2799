import {
  checked,
  endAttempt,
  isActive,
  refuse,
  stay,
  tellWorker,
  WAITING,
  type SessionCommand,
  type SessionEffect,
  type SessionPlan,
  type SessionStanding,
  type SessionState,
} from './session.state.js';

/**
 * Decides a tenant's command (pure). Refusals throw FAILED_PRECONDITION and
 * change nothing. Repeating a command whose effect already holds (start on a
 * running session, stop on a resting one, logout when logged out) changes
 * nothing and is not an error, as with operators' actions on workers.
 *
 * The epoch rule. An attempt is one run of PENDING -> STARTING -> SCAN_QR ->
 * WORKING on one worker. The epoch goes up by one exactly when an attempt
 * ends: when the session leaves those four states, or goes back to PENDING
 * from a worker (restart, connection lost, worker failed). Starting from a
 * resting state keeps the number, which no earlier attempt carried because
 * ending that attempt bumped it. Everything belonging to an attempt (the
 * scheduler's answer, StartSession, the worker's reports) carries its epoch,
 * and anything from an earlier attempt is stale. So a stop, restart, logout
 * or delete needs no acknowledgement: the old worker's late reports,
 * including its "ended: STOPPED", arrive stale and are dropped; an end that
 * arrives current was not asked for by the control plane.
 *
 * - start: from STOPPED, FAILED or LOGGED_OUT (which pairs anew) to PENDING,
 *   asking for a placement. FAILED is never left automatically, only by the
 *   tenant.
 * - stop: ends the attempt (STOPPED), stopping it on its worker if it has one.
 * - restart: stop, then start: a new attempt, placed afresh.
 * - logout: needs a linked account (WORKING, or a stored auth state). The
 *   worker unlinks the device when it runs the session; the auth state is
 *   wiped either way. From a resting state only the stored auth state goes:
 *   WhatsApp cannot be told without running the session, so the phone lists
 *   the device until the user removes it there. Refused in SCAN_QR (nothing
 *   is linked; stop or delete cancels pairing).
 * - delete: from any state; stops it on its worker first, wipes the auth
 *   state, deletes the record. It does not unlink the device (logout first
 *   for that): a delete must succeed even when WhatsApp cannot be reached.
 * - requestPairingCode and getQr: only in SCAN_QR. send: only in WORKING.
 *
 * Whatever it changes, a tenant's start, stop, restart, logout or delete
 * clears the backoff of earlier failed attempts: the tenant asked again.
 */
export function planSessionCommand(session: SessionStanding, command: SessionCommand): SessionPlan {
  switch (command.kind) {
    case 'start':
      return afresh(planStart(session));
    case 'stop':
      return afresh(planStop(session));
    case 'restart': {
      const stopped = planStop(session);
      const started = planStart(stopped.next);
      return afresh(checked(session, { next: started.next, effects: [...stopped.effects, ...started.effects] }));
    }
    case 'logout':
      return afresh(planLogout(session));
    case 'delete':
      return afresh(planDelete(session));
    case 'requestPairingCode': {
      const workerId = requireState(session, 'SCAN_QR', 'ask for a pairing code');
      return stay(session, [
        { kind: 'requestPairingCodeOnWorker', workerId, epoch: session.epoch, phoneNumber: command.phoneNumber },
      ]);
    }
    case 'getQr':
      requireState(session, 'SCAN_QR', 'get a QR code');
      // The latest QR code is data the caller keeps, not a change of state.
      return stay(session, []);
    case 'send': {
      const workerId = requireState(session, 'WORKING', 'send messages');
      return stay(session, [{ kind: 'sendOnWorker', workerId, epoch: session.epoch }]);
    }
  }
}

function planStart(session: SessionStanding): SessionPlan {
  if (isActive(session.state)) return stay(session, []);
  return checked(session, {
    next: { ...session, state: 'PENDING', reason: WAITING, workerId: null },
    effects: [{ kind: 'requestPlacement', epoch: session.epoch }],
  });
}

function planStop(session: SessionStanding): SessionPlan {
  if (!isActive(session.state)) return stay(session, []);
  return checked(session, endAttempt(session, 'STOPPED', 'stopped by the tenant', tellWorker(session, 'stopOnWorker')));
}

function planLogout(session: SessionStanding): SessionPlan {
  const wipe: SessionEffect = { kind: 'wipeAuthState' };
  const reason = 'logged out by the tenant';
  switch (session.state) {
    case 'LOGGED_OUT':
      return stay(session, []);
    case 'SCAN_QR':
      throw refuse(
        session,
        'the session is not linked yet (waiting for a QR scan); stop or delete it to cancel pairing',
      );
    case 'WORKING':
      return checked(
        session,
        endAttempt(session, 'LOGGED_OUT', reason, [...tellWorker(session, 'logoutOnWorker'), wipe]),
      );
    case 'STARTING':
    case 'PENDING':
    case 'STOPPED':
    case 'FAILED':
      if (!session.hasAuthState) {
        throw refuse(session, 'the session is not linked to an account; there is nothing to log out');
      }
      if (isActive(session.state)) {
        return checked(
          session,
          endAttempt(session, 'LOGGED_OUT', reason, [...tellWorker(session, 'logoutOnWorker'), wipe]),
        );
      }
      return checked(session, {
        next: { ...session, state: 'LOGGED_OUT', reason, hasAuthState: false },
        effects: [wipe],
      });
  }
}

function planDelete(session: SessionStanding): SessionPlan {
  const ended = isActive(session.state)
    ? endAttempt(session, 'STOPPED', 'deleted', tellWorker(session, 'stopOnWorker'))
    : { next: { ...session, state: 'STOPPED' as const, reason: 'deleted' }, effects: [] };
  return checked(session, {
    next: { ...ended.next, hasAuthState: false },
    effects: [...ended.effects, { kind: 'wipeAuthState' }, { kind: 'deleteSession' }],
  });
}

/** The tenant asked again: start afresh, without the backoff of earlier failures. */
function afresh(plan: SessionPlan): SessionPlan {
  return { next: { ...plan.next, failedAttempts: 0, placeAfter: null }, effects: plan.effects };
}

/** Guards a command that needs one state; returns the worker running the session. */
function requireState(session: SessionStanding, state: 'SCAN_QR' | 'WORKING', action: string): string {
  if (session.state === state && session.workerId !== null) return session.workerId;
  throw refuse(session, `cannot ${action}: ${describe(session.state)}`);
}

function describe(state: SessionState): string {
  switch (state) {
    case 'STOPPED':
    case 'FAILED':
    case 'LOGGED_OUT':
      return `the session is not running (${state}); start it first`;
    case 'PENDING':
    case 'STARTING':
      return `the session is still starting (${state}); try again once it is SCAN_QR or WORKING`;
    case 'SCAN_QR':
      return 'the session is waiting for a QR scan and is not linked yet';
    case 'WORKING':
      return 'the session is already linked to an account';
  }
}
