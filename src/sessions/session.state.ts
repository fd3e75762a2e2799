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

/** The WhatsApp account a session is linked to. */
export interface LinkedAccount {
  jid: string;
  phoneNumber: string;
  pushName: string;
}

/** The QR code a worker shows for linking, while the session waits for a scan. */
export interface ShownQr {
  payload: string;
  expiresAt: Date;
  /** Counts the codes of one attempt; a watcher shows the newest. */
  sequence: number;
}

/**
 * The part of a session the lifecycle rules read and write: all of it but
 * its identity, placement preferences and bookkeeping. The caller reads it
 * under the session's row lock (SELECT ... FOR UPDATE) and stores the plan
 * in the same transaction, so two plans computed from the same standing
 * cannot both be committed.
 */
export interface SessionStanding {
  state: SessionState;
  /** Why it is in this state, for the tenant; '' when there is nothing to add. */
  reason: string;
  /** Numbers the attempts to run the session (the epoch rule is in session-command.state.ts). */
  epoch: number;
  /** The worker running the current attempt: set exactly in STARTING, SCAN_QR and WORKING. */
  workerId: string | null;
  /** The control plane keeps an auth state for it, so a worker can resume it without pairing. */
  hasAuthState: boolean;
  /** The latest QR code: set only in SCAN_QR. */
  qr: ShownQr | null;
  /** The linked account, once connected; gone when logged out. */
  account: LinkedAccount | null;
  /** Attempts in a row that ended without connecting; reset once WORKING or by the tenant. */
  failedAttempts: number;
  /** Not placed before this (the backoff after failed attempts); null: at once. */
  placeAfter: Date | null;
}

/** What applying an event needs besides the event: the time, and a jitter for backoff (uniform in [0, 1)). */
export interface EventContext {
  now: Date;
  jitter: number;
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
  | { kind: 'engineQr'; epoch: number; workerId: string; qr: ShownQr }
  | { kind: 'engineConnected'; epoch: number; workerId: string; account: LinkedAccount }
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
 * Whether a stamped message belongs to the session's current attempt (and,
 * with a worker id, comes from the worker running it). Also for the reports
 * that do not change the state (auth checkpoints, QR payloads, inbound
 * messages): the same fence keeps a fenced-off worker from writing over its
 * successor. A later epoch than the session's throws ABORTED (see applySessionEvent).
 */
export function fenceAttempt(
  session: Pick<SessionStanding, 'state' | 'epoch' | 'workerId'>,
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

/** The reason of a session waiting for a placement. */
export const WAITING = 'waiting for a worker';

/*
 * Building blocks of the command rules (session-command.state.ts) and the
 * event rules (session-event.state.ts).
 */

/**
 * Ends the current attempt: bumps the epoch (so whatever the attempt still
 * sends is stale) and lets go of the worker. Telling the worker is the
 * caller's part (tellWorker): not needed when the worker reported the end.
 */
export function endAttempt(
  session: SessionStanding,
  state: SessionState,
  reason: string,
  effects: SessionEffect[],
): SessionPlan {
  return {
    next: {
      ...session,
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
export function tellWorker(session: SessionStanding, kind: 'stopOnWorker' | 'logoutOnWorker'): SessionEffect[] {
  return session.workerId === null ? [] : [{ kind, workerId: session.workerId, epoch: session.epoch }];
}

/** A worker-side end of an assigned session that is meant to run: a new attempt, placed afresh. */
export function placeAgain(session: SessionStanding, reason: string): SessionPlan {
  return endAttempt(session, 'PENDING', reason, [{ kind: 'requestPlacement', epoch: session.epoch + 1 }]);
}

export function stay(session: SessionStanding, effects: SessionEffect[]): SessionPlan {
  return { next: { ...session }, effects };
}

export function refuse(session: SessionStanding, message: string): DomainError {
  return new DomainError('FAILED_PRECONDITION', message, { details: { state: session.state } });
}

export function unexpected(session: SessionStanding, what: string): DomainError {
  return refuse(session, `${what} for the current attempt is not expected in ${session.state}`);
}

/**
 * Holds every plan to SESSION_TRANSITIONS, so the table cannot drift from
 * the code, and keeps the fields that belong to a state with it: a QR code
 * only in SCAN_QR, an account never once logged out.
 */
export function checked(from: SessionStanding, plan: SessionPlan): SessionPlan {
  const to = plan.next.state;
  if (to !== from.state && !SESSION_TRANSITIONS[from.state].includes(to)) {
    throw new DomainError('INTERNAL', `session transition ${from.state} -> ${to} is not in the table`);
  }
  const next = {
    ...plan.next,
    qr: to === 'SCAN_QR' ? plan.next.qr : null,
    account: to === 'LOGGED_OUT' ? null : plan.next.account,
  };
  return { next, effects: plan.effects };
}

/** Backoff before placing a session again after its n-th failed attempt in a row: 1 s doubling to 5 min, equal jitter. */
export function retryDelayMs(failedAttempts: number, jitter: number): number {
  const ceiling = Math.min(5 * 60_000, 1000 * 2 ** Math.max(0, failedAttempts - 1));
  return ceiling / 2 + jitter * (ceiling / 2);
}
