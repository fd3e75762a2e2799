import { DomainError } from '../../lib/errors.js';

/**
 * Where a session is in its life. Tenants read it; tenant commands, the
 * scheduler, workers and the fleet change it, and only through this module.
 */
export type SessionState =
  /** Not running and not meant to: never started, stopped by the tenant, or its QR code went unscanned. */
  | 'STOPPED'
  /** Meant to run, waiting for the scheduler to place it on a worker. */
  | 'PENDING'
  /** Placed on a worker whose engine is starting it (resuming, or about to show a QR code). */
  | 'STARTING'
  /** Not linked yet: waiting for the user to scan the QR code or type the pairing code. */
  | 'SCAN_QR'
  /** Linked and connected to WhatsApp: it sends and receives. */
  | 'WORKING'
  /** Ended by a problem the platform must not retry on its own (another device took over the account). */
  | 'FAILED'
  /** The device was unlinked (by the phone or the tenant): the auth state is gone, pairing starts over. */
  | 'LOGGED_OUT';

/** Every state, in lifecycle order (tests and exhaustive tables iterate it). */
export const SESSION_STATES: readonly SessionState[] = [
  'STOPPED',
  'PENDING',
  'STARTING',
  'SCAN_QR',
  'WORKING',
  'FAILED',
  'LOGGED_OUT',
];

/**
 * The part of a session the lifecycle rules read and write. The caller
 * stores it with optimistic locking on what it read, so two plans computed
 * from the same standing cannot both be committed.
 */
export interface SessionStanding {
  state: SessionState;
  /** Why it is in this state, for the tenant; '' when there is nothing to add. */
  reason: string;
  /** Numbers the attempts to run the session (the epoch rule is above planSessionCommand). */
  epoch: number;
  /** The worker running the current attempt: set exactly in STARTING, SCAN_QR and WORKING. */
  workerId: string | null;
  /** The control plane keeps an auth state for it, so a worker can resume it without pairing. */
  hasAuthState: boolean;
}

/** What a tenant asks of a session through the API. */
export type SessionCommand =
  | { kind: 'start' }
  | { kind: 'stop' }
  | { kind: 'restart' }
  | { kind: 'logout' }
  | { kind: 'delete' }
  | { kind: 'requestPairingCode'; phoneNumber: string }
  | { kind: 'getQr' }
  | { kind: 'send' };

/** Why a worker's engine ended a session (mirrors EngineStopReason in agent/engines/engine.ts; src/ does not import agent/). */
export type SessionEndReason = 'STOPPED' | 'QR_TIMEOUT' | 'LOGGED_OUT' | 'CONNECTION_REPLACED' | 'CONNECTION_LOST';

/** The scheduler's answer to a requestPlacement effect, stamped with the epoch that asked. */
export type SchedulerEvent =
  | { kind: 'placed'; epoch: number; workerId: string }
  /** Nothing fits now; the scheduler keeps the session queued and tries again when the fleet changes. */
  | { kind: 'noCapacity'; epoch: number; explanation: string };

/** What a worker reports about a session it runs, stamped with the attempt it runs it under. */
export type WorkerReport =
  | { kind: 'engineQr'; epoch: number; workerId: string }
  | { kind: 'engineConnected'; epoch: number; workerId: string }
  | { kind: 'engineEnded'; epoch: number; workerId: string; reason: SessionEndReason; detail: string }
  /** The worker no longer holds the session (it let go of it without an engine end, e.g. after a restart). */
  | { kind: 'released'; epoch: number; workerId: string };

/**
 * What the fleet says about the worker running a session: FAILED once its
 * lease lapsed (by the fencing argument in docs/fencing.md it has stopped
 * its work), DRAINED when an operator drains it (it is alive and must let go first).
 */
export type FleetEvent = { kind: 'workerLost'; epoch: number; workerId: string; cause: 'FAILED' | 'DRAINED' };

/** Everything that is not a tenant's command but changes a session. */
export type SessionEvent = SchedulerEvent | WorkerReport | FleetEvent;

/** Who causes a change; the API checks a tenant's role, the stream handler only ever builds WorkerReports. */
export type SessionActor = 'TENANT' | 'SCHEDULER' | 'WORKER' | 'FLEET';

/** Who may trigger each command and event. */
export const SESSION_TRIGGERS = {
  start: 'TENANT',
  stop: 'TENANT',
  restart: 'TENANT',
  logout: 'TENANT',
  delete: 'TENANT',
  requestPairingCode: 'TENANT',
  getQr: 'TENANT',
  send: 'TENANT',
  placed: 'SCHEDULER',
  noCapacity: 'SCHEDULER',
  engineQr: 'WORKER',
  engineConnected: 'WORKER',
  engineEnded: 'WORKER',
  released: 'WORKER',
  workerLost: 'FLEET',
} as const satisfies Record<SessionCommand['kind'] | SessionEvent['kind'], SessionActor>;

/**
 * Every change of state the rules can make (staying in the same state is
 * always allowed). Each plan is checked against this table, so it is the
 * whole truth about transitions, not a comment that may drift.
 */
export const SESSION_TRANSITIONS: Readonly<Record<SessionState, readonly SessionState[]>> = {
  // start, restart; logout with a stored auth state
  STOPPED: ['PENDING', 'LOGGED_OUT'],
  // placed; stop, delete; logout with a stored auth state
  PENDING: ['STARTING', 'STOPPED', 'LOGGED_OUT'],
  // qr, connected; stop, delete, QR timeout; restart, lost, released, worker lost;
  // connection replaced; logout, unlinked by the phone
  STARTING: ['SCAN_QR', 'WORKING', 'STOPPED', 'PENDING', 'FAILED', 'LOGGED_OUT'],
  SCAN_QR: ['WORKING', 'STOPPED', 'PENDING', 'FAILED', 'LOGGED_OUT'],
  WORKING: ['STOPPED', 'PENDING', 'FAILED', 'LOGGED_OUT'],
  // start, restart; logout with a stored auth state; delete
  FAILED: ['PENDING', 'LOGGED_OUT', 'STOPPED'],
  // start, restart; delete
  LOGGED_OUT: ['PENDING', 'STOPPED'],
};

/** What the caller must do after it stored the next standing, in this order. */
export type SessionEffect =
  /** Queue the session for the scheduler; the answer carries this epoch. */
  | { kind: 'requestPlacement'; epoch: number }
  /** StartSession: the worker opens the session (with the stored auth state, if any) under this epoch. */
  | { kind: 'startOnWorker'; workerId: string; epoch: number }
  /** StopSession: the worker disconnects it and keeps the auth state. */
  | { kind: 'stopOnWorker'; workerId: string; epoch: number }
  /** LogoutSession: the worker unlinks the device from the account and forgets the auth state. */
  | { kind: 'logoutOnWorker'; workerId: string; epoch: number }
  | { kind: 'requestPairingCodeOnWorker'; workerId: string; epoch: number; phoneNumber: string }
  /** Hand the message to the worker holding the connection. */
  | { kind: 'sendOnWorker'; workerId: string; epoch: number }
  /** Delete the stored auth state (idempotent: emitted whenever it must be gone afterwards). */
  | { kind: 'wipeAuthState' }
  /** Delete the session's record. */
  | { kind: 'deleteSession' };

/** A command's outcome: the standing to store, then what to do. */
export interface SessionPlan {
  next: SessionStanding;
  effects: SessionEffect[];
}

/** An event's outcome: applied like a command, or dropped because it belongs to an earlier attempt. */
export type SessionEventOutcome = ({ outcome: 'applied' } & SessionPlan) | { outcome: 'stale'; reason: string };

/** The stamp on everything that belongs to one attempt. */
export interface AttemptStamp {
  epoch: number;
  /** The worker that sent it; absent for the scheduler's answers, which come before any worker holds it. */
  workerId?: string;
}

/** The session is meant to run: it holds a worker or waits for one. */
export function isActive(state: SessionState): boolean {
  return state === 'PENDING' || isAssigned(state);
}

/** A worker runs the session, so it must stop there before any other worker may run it. */
export function isAssigned(state: SessionState): boolean {
  return state === 'STARTING' || state === 'SCAN_QR' || state === 'WORKING';
}

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
 */
export function planSessionCommand(session: SessionStanding, command: SessionCommand): SessionPlan {
  switch (command.kind) {
    case 'start':
      return planStart(session);
    case 'stop':
      return planStop(session);
    case 'restart': {
      const stopped = planStop(session);
      const started = planStart(stopped.next);
      return checked(session, { next: started.next, effects: [...stopped.effects, ...started.effects] });
    }
    case 'logout':
      return planLogout(session);
    case 'delete':
      return planDelete(session);
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
 * - engineQr: STARTING -> SCAN_QR; repeated in SCAN_QR (codes rotate) it
 *   changes nothing.
 * - engineConnected: STARTING or SCAN_QR -> WORKING; repeated, nothing (a
 *   reconnecting worker re-reports what it runs).
 * - engineEnded, which always ends the attempt:
 *   STOPPED (the worker stopped it unasked, e.g. draining or shutting down)
 *   and CONNECTION_LOST -> PENDING, placed again, since it is meant to run;
 *   QR_TIMEOUT -> STOPPED (not in WORKING); LOGGED_OUT -> LOGGED_OUT with the
 *   auth state wiped; CONNECTION_REPLACED -> FAILED ("ownership conflict"),
 *   never restarted automatically: two workers must not fight over an account.
 * - released: the worker no longer holds it -> PENDING, placed again.
 * - workerLost FAILED -> PENDING, placed again (no stop can reach the worker).
 *   DRAINED: the worker is alive and is told to stop the session; it stays
 *   where it is until the worker's "ended: STOPPED" places it again, so the
 *   account is never connected from two workers at once.
 */
export function applySessionEvent(session: SessionStanding, event: SessionEvent): SessionEventOutcome {
  const holder = event.kind === 'placed' || event.kind === 'noCapacity' ? undefined : event.workerId;
  const fence = fenceAttempt(
    session,
    holder === undefined ? { epoch: event.epoch } : { epoch: event.epoch, workerId: holder },
  );
  if (!fence.current) return { outcome: 'stale', reason: fence.reason };
  return { outcome: 'applied', ...checked(session, planEvent(session, event)) };
}

/**
 * Whether a stamped message belongs to the session's current attempt (and,
 * with a worker id, comes from the worker running it). Also for the reports
 * that do not change the state (auth checkpoints, QR payloads, inbound
 * messages): the same fence keeps a fenced-off worker from writing over its
 * successor. A later epoch than the session's throws ABORTED (see applySessionEvent).
 */
export function fenceAttempt(
  session: SessionStanding,
  stamp: AttemptStamp,
): { current: true } | { current: false; reason: string } {
  if (stamp.epoch > session.epoch) {
    throw new DomainError(
      'ABORTED',
      `epoch ${stamp.epoch} is ahead of the session's ${session.epoch}: it changed since it was read; read it again`,
      { details: { epoch: stamp.epoch, sessionEpoch: session.epoch } },
    );
  }
  if (stamp.epoch < session.epoch) {
    return { current: false, reason: `epoch ${stamp.epoch} is older than the session's ${session.epoch}` };
  }
  if (stamp.workerId !== undefined && stamp.workerId !== session.workerId) {
    return {
      current: false,
      reason:
        session.workerId === null
          ? `no worker runs the session now (${session.state})`
          : `worker ${stamp.workerId} does not run the session`,
    };
  }
  return { current: true };
}

function planEvent(session: SessionStanding, event: SessionEvent): SessionPlan {
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
      if (state === 'STARTING') return { next: { ...session, state: 'SCAN_QR', reason: '' }, effects: [] };
      if (state === 'SCAN_QR') return stay(session, []);
      throw unexpected(session, 'a QR code');
    case 'engineConnected':
      if (state === 'STARTING' || state === 'SCAN_QR') {
        return { next: { ...session, state: 'WORKING', reason: '' }, effects: [] };
      }
      if (state === 'WORKING') return stay(session, []);
      throw unexpected(session, 'a connection');
    case 'engineEnded':
      return planEnd(session, event.reason);
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
function planEnd(session: SessionStanding, reason: SessionEndReason): SessionPlan {
  if (!isAssigned(session.state)) throw unexpected(session, 'an end');
  switch (reason) {
    case 'STOPPED':
      return placeAgain(session, 'the worker stopped it; placing it again');
    case 'CONNECTION_LOST':
      return placeAgain(session, 'the connection was lost; placing it again');
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

const WAITING = 'waiting for a worker';

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

/**
 * Ends the current attempt: bumps the epoch (so whatever the attempt still
 * sends is stale) and lets go of the worker. Telling the worker is the
 * caller's part (tellWorker): not needed when the worker reported the end.
 */
function endAttempt(
  session: SessionStanding,
  state: SessionState,
  reason: string,
  effects: SessionEffect[],
): SessionPlan {
  return {
    next: {
      state,
      reason,
      epoch: session.epoch + 1,
      workerId: null,
      hasAuthState: state === 'LOGGED_OUT' ? false : session.hasAuthState,
    },
    effects,
  };
}

/** Stop (or log out) the session on the worker running it; nothing when none does. */
function tellWorker(session: SessionStanding, kind: 'stopOnWorker' | 'logoutOnWorker'): SessionEffect[] {
  return session.workerId === null ? [] : [{ kind, workerId: session.workerId, epoch: session.epoch }];
}

/** A worker-side end of an assigned session that is meant to run: a new attempt, placed afresh. */
function placeAgain(session: SessionStanding, reason: string): SessionPlan {
  return endAttempt(session, 'PENDING', reason, [{ kind: 'requestPlacement', epoch: session.epoch + 1 }]);
}

function stay(session: SessionStanding, effects: SessionEffect[]): SessionPlan {
  return { next: { ...session }, effects };
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

function refuse(session: SessionStanding, message: string): DomainError {
  return new DomainError('FAILED_PRECONDITION', message, { details: { state: session.state } });
}

function unexpected(session: SessionStanding, what: string): DomainError {
  return refuse(session, `${what} for the current attempt is not expected in ${session.state}`);
}

/** Holds every plan to SESSION_TRANSITIONS, so the table cannot drift from the code. */
function checked(from: SessionStanding, plan: SessionPlan): SessionPlan {
  const to = plan.next.state;
  if (to !== from.state && !SESSION_TRANSITIONS[from.state].includes(to)) {
    throw new DomainError('INTERNAL', `session transition ${from.state} -> ${to} is not in the table`);
  }
  return plan;
}
