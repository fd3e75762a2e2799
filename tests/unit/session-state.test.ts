import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DomainError } from '../../lib/errors.js';
import { planSessionCommand } from '../../src/sessions/session-command.state.js';
import { applySessionEvent } from '../../src/sessions/session-event.state.js';
import {
  fenceAttempt,
  isActive,
  isAssigned,
  retryDelayMs,
  SESSION_STATES,
  SESSION_TRANSITIONS,
  SESSION_TRIGGERS,
  type SessionCommand,
  type SessionEffect,
  type SessionEvent,
  type SessionEventOutcome,
  type SessionPlan,
  type SessionStanding,
  type SessionState,
} from '../../src/sessions/session.state.js';

/** Events are applied at this time, with this jitter (backoff is the only rule that reads them). */
const CONTEXT = { now: new Date('2026-01-01T00:00:00Z'), jitter: 0.5 };
const apply = (session: SessionStanding, event: SessionEvent): SessionEventOutcome =>
  applySessionEvent(session, event, CONTEXT);
const QR = { payload: 'ref,pub,key,adv', expiresAt: new Date('2026-01-01T00:01:00Z'), sequence: 1 };
const ACCOUNT = { jid: '15550001111@s.whatsapp.net', phoneNumber: '15550001111', pushName: 'Ada' };

// Every fixture is at epoch 7; w1 runs the assigned ones. "-noauth" variants
// hold no stored auth state (logout depends on it).
const fixtures = {
  STOPPED: standing('STOPPED', null, true),
  'STOPPED-noauth': standing('STOPPED', null, false),
  PENDING: standing('PENDING', null, true),
  'PENDING-noauth': standing('PENDING', null, false),
  STARTING: standing('STARTING', 'w1', true),
  'STARTING-noauth': standing('STARTING', 'w1', false),
  SCAN_QR: standing('SCAN_QR', 'w1', false),
  WORKING: standing('WORKING', 'w1', true),
  'WORKING-noauth': standing('WORKING', 'w1', false),
  FAILED: standing('FAILED', null, true),
  'FAILED-noauth': standing('FAILED', null, false),
  LOGGED_OUT: standing('LOGGED_OUT', null, false),
} satisfies Record<string, SessionStanding>;
type Fixture = keyof typeof fixtures;

function standing(state: SessionState, workerId: string | null, hasAuthState: boolean): SessionStanding {
  // Frozen: a plan that mutated its input would throw here.
  return Object.freeze({
    state,
    reason: 'before',
    epoch: 7,
    workerId,
    hasAuthState,
    qr: state === 'SCAN_QR' ? QR : null,
    account: state === 'WORKING' ? ACCOUNT : null,
    failedAttempts: 0,
    placeAfter: null,
  });
}

const commands = {
  start: { kind: 'start' },
  stop: { kind: 'stop' },
  restart: { kind: 'restart' },
  logout: { kind: 'logout' },
  delete: { kind: 'delete' },
  requestPairingCode: { kind: 'requestPairingCode', phoneNumber: '15551234567' },
  getQr: { kind: 'getQr' },
  send: { kind: 'send' },
} satisfies Record<SessionCommand['kind'], SessionCommand>;
type CommandName = keyof typeof commands;

/** Events of the current attempt (epoch 7), from w1 where a worker sends them. */
const events = {
  placed: { kind: 'placed', epoch: 7, workerId: 'w2' },
  noCapacity: { kind: 'noCapacity', epoch: 7, explanation: 'all 3 workers are full' },
  engineQr: { kind: 'engineQr', epoch: 7, workerId: 'w1', qr: QR },
  engineConnected: { kind: 'engineConnected', epoch: 7, workerId: 'w1', account: ACCOUNT },
  'ended:STOPPED': { kind: 'engineEnded', epoch: 7, workerId: 'w1', reason: 'STOPPED', detail: 'draining' },
  'ended:QR_TIMEOUT': { kind: 'engineEnded', epoch: 7, workerId: 'w1', reason: 'QR_TIMEOUT', detail: '' },
  'ended:LOGGED_OUT': { kind: 'engineEnded', epoch: 7, workerId: 'w1', reason: 'LOGGED_OUT', detail: '401' },
  'ended:CONNECTION_REPLACED': {
    kind: 'engineEnded',
    epoch: 7,
    workerId: 'w1',
    reason: 'CONNECTION_REPLACED',
    detail: '440',
  },
  'ended:CONNECTION_LOST': { kind: 'engineEnded', epoch: 7, workerId: 'w1', reason: 'CONNECTION_LOST', detail: '' },
  released: { kind: 'released', epoch: 7, workerId: 'w1' },
  'workerLost:FAILED': { kind: 'workerLost', epoch: 7, workerId: 'w1', cause: 'FAILED' },
  'workerLost:DRAINED': { kind: 'workerLost', epoch: 7, workerId: 'w1', cause: 'DRAINED' },
} satisfies Record<string, SessionEvent>;
type EventName = keyof typeof events;

/** One line per outcome: "STATE eEPOCH WORKER auth|noauth | effects". */
function summarise(plan: SessionPlan): string {
  const { next } = plan;
  const head = `${next.state} e${next.epoch} ${next.workerId ?? '-'} ${next.hasAuthState ? 'auth' : 'noauth'} |`;
  return [head, ...plan.effects.map(effect)].join(' ');
}

function effect(e: SessionEffect): string {
  switch (e.kind) {
    case 'requestPlacement':
      return `place@${e.epoch}`;
    case 'startOnWorker':
      return `start:${e.workerId}@${e.epoch}`;
    case 'stopOnWorker':
      return `stop:${e.workerId}@${e.epoch}`;
    case 'logoutOnWorker':
      return `logout:${e.workerId}@${e.epoch}`;
    case 'requestPairingCodeOnWorker':
      return `pair:${e.workerId}@${e.epoch}:${e.phoneNumber}`;
    case 'sendOnWorker':
      return `send:${e.workerId}@${e.epoch}`;
    case 'wipeAuthState':
      return 'wipe';
    case 'deleteSession':
      return 'delete';
  }
}

function errorCode(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    return error instanceof DomainError ? error.code : `not a DomainError: ${String(error)}`;
  }
  return 'no error';
}

function commandOutcome(fixture: Fixture, name: CommandName): string {
  try {
    return summarise(planSessionCommand(fixtures[fixture], commands[name]));
  } catch (error) {
    return error instanceof DomainError ? error.code : 'not a DomainError';
  }
}

function eventOutcome(session: SessionStanding, event: SessionEvent): string {
  try {
    const outcome = apply(session, event);
    return outcome.outcome === 'stale' ? 'stale' : summarise(outcome);
  } catch (error) {
    return error instanceof DomainError ? error.code : 'not a DomainError';
  }
}

const FP = 'FAILED_PRECONDITION';

// Every (state x command) pair, plus the auth variants where logout depends on them.
const commandTable: [Fixture, CommandName, string][] = [
  ['STOPPED', 'start', 'PENDING e7 - auth | place@7'],
  ['STOPPED', 'stop', 'STOPPED e7 - auth |'],
  ['STOPPED', 'restart', 'PENDING e7 - auth | place@7'],
  ['STOPPED', 'logout', 'LOGGED_OUT e7 - noauth | wipe'],
  ['STOPPED-noauth', 'logout', FP],
  ['STOPPED', 'delete', 'STOPPED e7 - noauth | wipe delete'],
  ['STOPPED', 'requestPairingCode', FP],
  ['STOPPED', 'getQr', FP],
  ['STOPPED', 'send', FP],

  ['PENDING', 'start', 'PENDING e7 - auth |'],
  ['PENDING', 'stop', 'STOPPED e8 - auth |'],
  ['PENDING', 'restart', 'PENDING e8 - auth | place@8'],
  ['PENDING', 'logout', 'LOGGED_OUT e8 - noauth | wipe'],
  ['PENDING-noauth', 'logout', FP],
  ['PENDING', 'delete', 'STOPPED e8 - noauth | wipe delete'],
  ['PENDING', 'requestPairingCode', FP],
  ['PENDING', 'getQr', FP],
  ['PENDING', 'send', FP],

  ['STARTING', 'start', 'STARTING e7 w1 auth |'],
  ['STARTING', 'stop', 'STOPPED e8 - auth | stop:w1@7'],
  ['STARTING', 'restart', 'PENDING e8 - auth | stop:w1@7 place@8'],
  ['STARTING', 'logout', 'LOGGED_OUT e8 - noauth | logout:w1@7 wipe'],
  ['STARTING-noauth', 'logout', FP],
  ['STARTING', 'delete', 'STOPPED e8 - noauth | stop:w1@7 wipe delete'],
  ['STARTING', 'requestPairingCode', FP],
  ['STARTING', 'getQr', FP],
  ['STARTING', 'send', FP],

  ['SCAN_QR', 'start', 'SCAN_QR e7 w1 noauth |'],
  ['SCAN_QR', 'stop', 'STOPPED e8 - noauth | stop:w1@7'],
  ['SCAN_QR', 'restart', 'PENDING e8 - noauth | stop:w1@7 place@8'],
  ['SCAN_QR', 'logout', FP],
  ['SCAN_QR', 'delete', 'STOPPED e8 - noauth | stop:w1@7 wipe delete'],
  ['SCAN_QR', 'requestPairingCode', 'SCAN_QR e7 w1 noauth | pair:w1@7:15551234567'],
  ['SCAN_QR', 'getQr', 'SCAN_QR e7 w1 noauth |'],
  ['SCAN_QR', 'send', FP],

  ['WORKING', 'start', 'WORKING e7 w1 auth |'],
  ['WORKING', 'stop', 'STOPPED e8 - auth | stop:w1@7'],
  ['WORKING', 'restart', 'PENDING e8 - auth | stop:w1@7 place@8'],
  ['WORKING', 'logout', 'LOGGED_OUT e8 - noauth | logout:w1@7 wipe'],
  // Linked before its first auth checkpoint arrived: still linked, still logged out.
  ['WORKING-noauth', 'logout', 'LOGGED_OUT e8 - noauth | logout:w1@7 wipe'],
  ['WORKING', 'delete', 'STOPPED e8 - noauth | stop:w1@7 wipe delete'],
  ['WORKING', 'requestPairingCode', FP],
  ['WORKING', 'getQr', FP],
  ['WORKING', 'send', 'WORKING e7 w1 auth | send:w1@7'],

  ['FAILED', 'start', 'PENDING e7 - auth | place@7'],
  ['FAILED', 'stop', 'FAILED e7 - auth |'],
  ['FAILED', 'restart', 'PENDING e7 - auth | place@7'],
  ['FAILED', 'logout', 'LOGGED_OUT e7 - noauth | wipe'],
  ['FAILED-noauth', 'logout', FP],
  ['FAILED', 'delete', 'STOPPED e7 - noauth | wipe delete'],
  ['FAILED', 'requestPairingCode', FP],
  ['FAILED', 'getQr', FP],
  ['FAILED', 'send', FP],

  ['LOGGED_OUT', 'start', 'PENDING e7 - noauth | place@7'],
  ['LOGGED_OUT', 'stop', 'LOGGED_OUT e7 - noauth |'],
  ['LOGGED_OUT', 'restart', 'PENDING e7 - noauth | place@7'],
  ['LOGGED_OUT', 'logout', 'LOGGED_OUT e7 - noauth |'],
  ['LOGGED_OUT', 'delete', 'STOPPED e7 - noauth | wipe delete'],
  ['LOGGED_OUT', 'requestPairingCode', FP],
  ['LOGGED_OUT', 'getQr', FP],
  ['LOGGED_OUT', 'send', FP],
];

const S = 'stale';
// Every (state x event) pair for the current epoch. Worker reports to a
// session no worker runs are stale: the sender is not its worker.
const eventTable: [Fixture, EventName, string][] = [
  ['STOPPED', 'placed', FP],
  ['STOPPED', 'noCapacity', FP],
  ['STOPPED', 'engineQr', S],
  ['STOPPED', 'engineConnected', S],
  ['STOPPED', 'ended:STOPPED', S],
  ['STOPPED', 'ended:QR_TIMEOUT', S],
  ['STOPPED', 'ended:LOGGED_OUT', S],
  ['STOPPED', 'ended:CONNECTION_REPLACED', S],
  ['STOPPED', 'ended:CONNECTION_LOST', S],
  ['STOPPED', 'released', S],
  ['STOPPED', 'workerLost:FAILED', S],
  ['STOPPED', 'workerLost:DRAINED', S],

  ['PENDING', 'placed', 'STARTING e7 w2 auth | start:w2@7'],
  ['PENDING', 'noCapacity', 'PENDING e7 - auth |'],
  ['PENDING', 'engineQr', S],
  ['PENDING', 'engineConnected', S],
  ['PENDING', 'ended:STOPPED', S],
  ['PENDING', 'ended:QR_TIMEOUT', S],
  ['PENDING', 'ended:LOGGED_OUT', S],
  ['PENDING', 'ended:CONNECTION_REPLACED', S],
  ['PENDING', 'ended:CONNECTION_LOST', S],
  ['PENDING', 'released', S],
  ['PENDING', 'workerLost:FAILED', S],
  ['PENDING', 'workerLost:DRAINED', S],

  ['STARTING', 'placed', FP],
  ['STARTING', 'noCapacity', FP],
  ['STARTING', 'engineQr', 'SCAN_QR e7 w1 auth |'],
  ['STARTING', 'engineConnected', 'WORKING e7 w1 auth |'],
  ['STARTING', 'ended:STOPPED', 'PENDING e8 - auth | place@8'],
  ['STARTING', 'ended:QR_TIMEOUT', 'STOPPED e8 - auth |'],
  ['STARTING', 'ended:LOGGED_OUT', 'LOGGED_OUT e8 - noauth | wipe'],
  ['STARTING', 'ended:CONNECTION_REPLACED', 'FAILED e8 - auth |'],
  ['STARTING', 'ended:CONNECTION_LOST', 'PENDING e8 - auth | place@8'],
  ['STARTING', 'released', 'PENDING e8 - auth | place@8'],
  ['STARTING', 'workerLost:FAILED', 'PENDING e8 - auth | place@8'],
  ['STARTING', 'workerLost:DRAINED', 'STARTING e7 w1 auth | stop:w1@7'],

  ['SCAN_QR', 'placed', FP],
  ['SCAN_QR', 'noCapacity', FP],
  ['SCAN_QR', 'engineQr', 'SCAN_QR e7 w1 noauth |'],
  ['SCAN_QR', 'engineConnected', 'WORKING e7 w1 noauth |'],
  ['SCAN_QR', 'ended:STOPPED', 'PENDING e8 - noauth | place@8'],
  ['SCAN_QR', 'ended:QR_TIMEOUT', 'STOPPED e8 - noauth |'],
  ['SCAN_QR', 'ended:LOGGED_OUT', 'LOGGED_OUT e8 - noauth | wipe'],
  ['SCAN_QR', 'ended:CONNECTION_REPLACED', 'FAILED e8 - noauth |'],
  ['SCAN_QR', 'ended:CONNECTION_LOST', 'PENDING e8 - noauth | place@8'],
  ['SCAN_QR', 'released', 'PENDING e8 - noauth | place@8'],
  ['SCAN_QR', 'workerLost:FAILED', 'PENDING e8 - noauth | place@8'],
  ['SCAN_QR', 'workerLost:DRAINED', 'SCAN_QR e7 w1 noauth | stop:w1@7'],

  ['WORKING', 'placed', FP],
  ['WORKING', 'noCapacity', FP],
  ['WORKING', 'engineQr', FP],
  ['WORKING', 'engineConnected', 'WORKING e7 w1 auth |'],
  ['WORKING', 'ended:STOPPED', 'PENDING e8 - auth | place@8'],
  ['WORKING', 'ended:QR_TIMEOUT', FP],
  ['WORKING', 'ended:LOGGED_OUT', 'LOGGED_OUT e8 - noauth | wipe'],
  ['WORKING', 'ended:CONNECTION_REPLACED', 'FAILED e8 - auth |'],
  ['WORKING', 'ended:CONNECTION_LOST', 'PENDING e8 - auth | place@8'],
  ['WORKING', 'released', 'PENDING e8 - auth | place@8'],
  ['WORKING', 'workerLost:FAILED', 'PENDING e8 - auth | place@8'],
  ['WORKING', 'workerLost:DRAINED', 'WORKING e7 w1 auth | stop:w1@7'],

  ['FAILED', 'placed', FP],
  ['FAILED', 'noCapacity', FP],
  ['FAILED', 'engineQr', S],
  ['FAILED', 'engineConnected', S],
  ['FAILED', 'ended:STOPPED', S],
  ['FAILED', 'ended:QR_TIMEOUT', S],
  ['FAILED', 'ended:LOGGED_OUT', S],
  ['FAILED', 'ended:CONNECTION_REPLACED', S],
  ['FAILED', 'ended:CONNECTION_LOST', S],
  ['FAILED', 'released', S],
  ['FAILED', 'workerLost:FAILED', S],
  ['FAILED', 'workerLost:DRAINED', S],

  ['LOGGED_OUT', 'placed', FP],
  ['LOGGED_OUT', 'noCapacity', FP],
  ['LOGGED_OUT', 'engineQr', S],
  ['LOGGED_OUT', 'engineConnected', S],
  ['LOGGED_OUT', 'ended:STOPPED', S],
  ['LOGGED_OUT', 'ended:QR_TIMEOUT', S],
  ['LOGGED_OUT', 'ended:LOGGED_OUT', S],
  ['LOGGED_OUT', 'ended:CONNECTION_REPLACED', S],
  ['LOGGED_OUT', 'ended:CONNECTION_LOST', S],
  ['LOGGED_OUT', 'released', S],
  ['LOGGED_OUT', 'workerLost:FAILED', S],
  ['LOGGED_OUT', 'workerLost:DRAINED', S],
];

const mainFixtures = SESSION_STATES as readonly Fixture[];

describe('session commands: every state x command', () => {
  it('the table covers every pair', () => {
    const covered = new Set(commandTable.map(([f, c]) => `${fixtures[f].state}/${c}`));
    for (const state of SESSION_STATES) {
      for (const name of Object.keys(commands)) expect(covered, `${state}/${name}`).toContain(`${state}/${name}`);
    }
  });

  it.each(commandTable)('%s + %s -> %s', (fixture, name, expected) => {
    expect(commandOutcome(fixture, name)).toBe(expected);
  });

  it('gives the tenant a reason it can act on when it refuses', () => {
    const refusal = (fixture: Fixture, name: CommandName) => {
      try {
        planSessionCommand(fixtures[fixture], commands[name]);
      } catch (error) {
        return error as DomainError;
      }
      throw new Error('not refused');
    };
    expect(refusal('STOPPED', 'send').message).toMatch(/not running \(STOPPED\); start it first/);
    expect(refusal('STARTING', 'getQr').message).toMatch(/still starting \(STARTING\)/);
    expect(refusal('WORKING', 'getQr').message).toMatch(/already linked/);
    expect(refusal('SCAN_QR', 'send').message).toMatch(/waiting for a QR scan/);
    expect(refusal('SCAN_QR', 'logout').message).toMatch(/stop or delete it to cancel pairing/);
    expect(refusal('STOPPED-noauth', 'logout').message).toMatch(/nothing to log out/);
    expect(refusal('FAILED', 'requestPairingCode').details).toEqual({ state: 'FAILED' });
  });

  it('records why it stopped, was logged out or was deleted', () => {
    expect(planSessionCommand(fixtures.WORKING, commands.stop).next.reason).toBe('stopped by the tenant');
    expect(planSessionCommand(fixtures.WORKING, commands.logout).next.reason).toBe('logged out by the tenant');
    expect(planSessionCommand(fixtures.WORKING, commands.delete).next.reason).toBe('deleted');
    expect(planSessionCommand(fixtures.FAILED, commands.start).next.reason).toBe('waiting for a worker');
  });
});

describe('session events: every state x event', () => {
  it('the table covers every pair', () => {
    const covered = new Set(eventTable.map(([f, e]) => `${fixtures[f].state}/${e}`));
    for (const state of SESSION_STATES) {
      for (const name of Object.keys(events)) expect(covered, `${state}/${name}`).toContain(`${state}/${name}`);
    }
  });

  it.each(eventTable)('%s + %s (current attempt) -> %s', (fixture, name, expected) => {
    expect(eventOutcome(fixtures[fixture], events[name])).toBe(expected);
  });

  const everyPair = mainFixtures.flatMap((f) => (Object.keys(events) as EventName[]).map((e) => [f, e] as const));

  it.each(everyPair)('%s + %s from an earlier attempt (epoch 6) is stale', (fixture, name) => {
    expect(eventOutcome(fixtures[fixture], { ...events[name], epoch: 6 })).toBe('stale');
  });

  it.each(everyPair)('%s + %s from a later epoch (8) is ABORTED: the session was read too early', (fixture, name) => {
    expect(eventOutcome(fixtures[fixture], { ...events[name], epoch: 8 })).toBe('ABORTED');
  });

  const fromOtherWorker = (['STARTING', 'SCAN_QR', 'WORKING'] as const).flatMap((f) =>
    (Object.keys(events) as EventName[])
      .filter((e) => e !== 'placed' && e !== 'noCapacity')
      .map((e) => [f, e] as const),
  );

  it.each(fromOtherWorker)('%s + %s from a worker that does not run it is stale', (fixture, name) => {
    expect(eventOutcome(fixtures[fixture], { ...events[name], workerId: 'w9' })).toBe('stale');
  });

  it('marks a replaced connection as an ownership conflict and never places it again', () => {
    const outcome = apply(fixtures.WORKING, events['ended:CONNECTION_REPLACED']);
    expect(outcome.outcome === 'applied' && outcome.next.reason).toMatch(/^ownership conflict/);
    expect(outcome.outcome === 'applied' && outcome.effects).toEqual([]);
  });

  it('stops with a reason when the QR code went unscanned', () => {
    const outcome = apply(fixtures.SCAN_QR, events['ended:QR_TIMEOUT']);
    expect(outcome.outcome === 'applied' && outcome.next.reason).toBe('the QR code was not scanned in time');
  });

  it("shows the scheduler's explanation while waiting for capacity", () => {
    const outcome = apply(fixtures.PENDING, events.noCapacity);
    expect(outcome.outcome === 'applied' && outcome.next.reason).toBe('all 3 workers are full');
    const blank = apply(fixtures.PENDING, { ...events.noCapacity, explanation: '' });
    expect(blank.outcome === 'applied' && blank.next.reason).toBe('waiting for a worker');
  });

  it('says why a stale event was dropped', () => {
    expect(apply(fixtures.WORKING, { ...events.engineQr, epoch: 3 })).toEqual({
      outcome: 'stale',
      reason: "epoch 3 is older than the session's 7",
    });
    expect(apply(fixtures.PENDING, events.engineConnected)).toEqual({
      outcome: 'stale',
      reason: 'no worker runs the session now (PENDING)',
    });
  });
});

describe('the transition table', () => {
  const observed = (): Set<string> => {
    const seen = new Set<string>();
    const note = (from: SessionStanding, plan: SessionPlan) => {
      if (plan.next.state !== from.state) seen.add(`${from.state}->${plan.next.state}`);
    };
    for (const fixture of Object.keys(fixtures) as Fixture[]) {
      for (const command of Object.values(commands)) {
        try {
          note(fixtures[fixture], planSessionCommand(fixtures[fixture], command));
        } catch {
          // refusals change nothing
        }
      }
      for (const event of Object.values(events)) {
        try {
          const outcome = apply(fixtures[fixture], event);
          if (outcome.outcome === 'applied') note(fixtures[fixture], outcome);
        } catch {
          // refusals change nothing
        }
      }
    }
    return seen;
  };

  it('lists exactly the transitions the rules make', () => {
    const table = new Set(SESSION_STATES.flatMap((from) => SESSION_TRANSITIONS[from].map((to) => `${from}->${to}`)));
    expect([...observed()].sort()).toEqual([...table].sort());
  });

  it('says who triggers what: tenants command, the scheduler places, workers report, the fleet loses workers', () => {
    for (const name of Object.keys(commands) as CommandName[]) expect(SESSION_TRIGGERS[name]).toBe('TENANT');
    expect(SESSION_TRIGGERS.placed).toBe('SCHEDULER');
    expect(SESSION_TRIGGERS.noCapacity).toBe('SCHEDULER');
    expect(SESSION_TRIGGERS.engineQr).toBe('WORKER');
    expect(SESSION_TRIGGERS.engineConnected).toBe('WORKER');
    expect(SESSION_TRIGGERS.engineEnded).toBe('WORKER');
    expect(SESSION_TRIGGERS.released).toBe('WORKER');
    expect(SESSION_TRIGGERS.workerLost).toBe('FLEET');
  });

  it('calls a session active while it holds or waits for a worker, assigned while it holds one', () => {
    expect(SESSION_STATES.filter(isActive)).toEqual(['PENDING', 'STARTING', 'SCAN_QR', 'WORKING']);
    expect(SESSION_STATES.filter(isAssigned)).toEqual(['STARTING', 'SCAN_QR', 'WORKING']);
  });
});

describe('fencing by epoch', () => {
  it('accepts the current attempt from its worker and refuses everything else', () => {
    expect(fenceAttempt(fixtures.WORKING, { epoch: 7, workerId: 'w1' })).toEqual({ current: true });
    expect(fenceAttempt(fixtures.PENDING, { epoch: 7 })).toEqual({ current: true });
    expect(fenceAttempt(fixtures.WORKING, { epoch: 6, workerId: 'w1' }).current).toBe(false);
    expect(fenceAttempt(fixtures.WORKING, { epoch: 7, workerId: 'w2' })).toEqual({
      current: false,
      reason: 'worker w2 does not run the session',
    });
    expect(errorCode(() => fenceAttempt(fixtures.WORKING, { epoch: 8, workerId: 'w1' }))).toBe('ABORTED');
  });

  it('drops the old worker once the session moved: lost on w1, re-placed on w2', () => {
    let session = fixtures.WORKING;
    const step = (event: SessionEvent) => {
      const outcome = apply(session, event);
      if (outcome.outcome === 'applied') session = outcome.next;
      return outcome.outcome;
    };
    expect(step({ kind: 'workerLost', epoch: 7, workerId: 'w1', cause: 'FAILED' })).toBe('applied');
    expect(session).toMatchObject({ state: 'PENDING', epoch: 8, workerId: null });
    expect(step({ kind: 'placed', epoch: 8, workerId: 'w2' })).toBe('applied');
    // w1 was frozen and wakes up: everything it says is from epoch 7.
    expect(step({ kind: 'engineConnected', epoch: 7, workerId: 'w1', account: ACCOUNT })).toBe('stale');
    expect(step({ kind: 'engineEnded', epoch: 7, workerId: 'w1', reason: 'CONNECTION_REPLACED', detail: '' })).toBe(
      'stale',
    );
    expect(step({ kind: 'engineConnected', epoch: 8, workerId: 'w2', account: ACCOUNT })).toBe('applied');
    expect(session).toMatchObject({ state: 'WORKING', epoch: 8, workerId: 'w2' });
  });

  it('drops a placement answered after the tenant stopped and started again', () => {
    const started = planSessionCommand(fixtures.STOPPED, commands.start).next;
    const stopped = planSessionCommand(started, commands.stop).next;
    const again = planSessionCommand(stopped, commands.start);
    expect(again.effects).toEqual([{ kind: 'requestPlacement', epoch: 8 }]);
    expect(eventOutcome(again.next, { kind: 'placed', epoch: 7, workerId: 'w1' })).toBe('stale');
    expect(eventOutcome(again.next, { kind: 'placed', epoch: 8, workerId: 'w1' })).toBe(
      'STARTING e8 w1 auth | start:w1@8',
    );
  });

  it('moves a session off a draining worker only after that worker stopped it', () => {
    const drained = apply(fixtures.WORKING, events['workerLost:DRAINED']);
    expect(drained.outcome === 'applied' && drained.next).toMatchObject({ state: 'WORKING', workerId: 'w1' });
    expect(drained.outcome === 'applied' && drained.next.reason).toBe('its worker is draining; moving it');
    const session = drained.outcome === 'applied' ? drained.next : fixtures.WORKING;
    expect(eventOutcome(session, events['ended:STOPPED'])).toBe('PENDING e8 - auth | place@8');
  });
});

// Random histories: whatever arrives in whatever order, the invariants hold.
describe('invariants over random histories', () => {
  const input = fc.oneof(
    fc.constantFrom(...Object.values(commands)).map((command) => ({ command })),
    fc
      .record({
        event: fc.constantFrom(...Object.values(events)),
        epochShift: fc.constantFrom(-1, 0, 0, 0, 1),
        sender: fc.constantFrom('owner', 'owner', 'other'),
      })
      .map(({ event, epochShift, sender }) => ({ event, epochShift, sender })),
  );

  it('keeps the worker iff assigned, bumps the epoch iff an attempt ends, and stamps effects correctly', () => {
    fc.assert(
      fc.property(fc.array(input, { minLength: 1, maxLength: 40 }), (history) => {
        let session: SessionStanding = {
          state: 'STOPPED',
          reason: '',
          epoch: 0,
          workerId: null,
          hasAuthState: false,
          qr: null,
          account: null,
          failedAttempts: 0,
          placeAfter: null,
        };
        for (const step of history) {
          let plan: SessionPlan;
          let restart = false;
          try {
            if ('command' in step) {
              restart = step.command.kind === 'restart';
              plan = planSessionCommand(session, step.command);
            } else {
              const workerId =
                step.event.kind === 'placed'
                  ? step.event.workerId
                  : step.sender === 'owner'
                    ? (session.workerId ?? 'w1')
                    : 'w9';
              const outcome = apply(session, {
                ...step.event,
                epoch: session.epoch + step.epochShift,
                workerId,
              } as SessionEvent);
              if (outcome.outcome === 'stale') continue;
              plan = outcome;
            }
          } catch (error) {
            expect(['FAILED_PRECONDITION', 'ABORTED']).toContain((error as DomainError).code);
            continue;
          }
          const { next, effects } = plan;
          expect(next.workerId !== null).toBe(isAssigned(next.state));
          const ended =
            isActive(session.state) &&
            (!isActive(next.state) || (next.state === 'PENDING' && (isAssigned(session.state) || restart)));
          expect(next.epoch).toBe(session.epoch + (ended ? 1 : 0));
          if (next.state === 'LOGGED_OUT') expect(next.hasAuthState).toBe(false);
          for (const e of effects) {
            switch (e.kind) {
              case 'requestPlacement':
                expect(next.state).toBe('PENDING');
                expect(e.epoch).toBe(next.epoch);
                break;
              case 'startOnWorker':
                expect([e.workerId, e.epoch]).toEqual([next.workerId, next.epoch]);
                break;
              case 'stopOnWorker':
              case 'logoutOnWorker':
              case 'requestPairingCodeOnWorker':
              case 'sendOnWorker':
                expect([e.workerId, e.epoch]).toEqual([session.workerId, session.epoch]);
                break;
              case 'wipeAuthState':
              case 'deleteSession':
                expect(next.hasAuthState).toBe(false);
                break;
            }
          }
          session = next;
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe('fields the rules own: QR code, account, backoff', () => {
  it('keeps the QR code only while SCAN_QR, and takes each rotated code', () => {
    const shown = apply(fixtures.STARTING, events.engineQr);
    expect(shown.outcome === 'applied' && shown.next).toMatchObject({ state: 'SCAN_QR', qr: QR });
    const rotated = { ...QR, payload: 'ref2,pub,key,adv', sequence: 2 };
    const again = apply(fixtures.SCAN_QR, { ...events.engineQr, qr: rotated });
    expect(again.outcome === 'applied' && again.next.qr).toEqual(rotated);
    const linked = apply(fixtures.SCAN_QR, events.engineConnected);
    expect(linked.outcome === 'applied' && linked.next).toMatchObject({ state: 'WORKING', qr: null, account: ACCOUNT });
    expect(planSessionCommand(fixtures.SCAN_QR, commands.stop).next.qr).toBeNull();
  });

  it('forgets the account when logged out, by the tenant or the phone', () => {
    expect(planSessionCommand(fixtures.WORKING, commands.logout).next.account).toBeNull();
    const unlinked = apply(fixtures.WORKING, events['ended:LOGGED_OUT']);
    expect(unlinked.outcome === 'applied' && unlinked.next.account).toBeNull();
    // Stopped or placed again, the account is kept: it is still linked.
    expect(planSessionCommand(fixtures.WORKING, commands.stop).next.account).toEqual(ACCOUNT);
  });

  it('backs off after each lost connection (1 s doubling, jittered) and starts over once connected', () => {
    let session: SessionStanding = fixtures.STARTING;
    const delays: number[] = [];
    for (let attempt = 1; attempt <= 4; attempt++) {
      const lost = apply(session, { ...events['ended:CONNECTION_LOST'], epoch: session.epoch, detail: 'timed out' });
      if (lost.outcome !== 'applied') throw new Error('not applied');
      expect(lost.next).toMatchObject({ state: 'PENDING', failedAttempts: attempt });
      expect(lost.next.reason).toBe(`the connection was lost; placing it again (attempt ${attempt} failed: timed out)`);
      delays.push((lost.next.placeAfter?.getTime() ?? 0) - CONTEXT.now.getTime());
      const placed = apply(lost.next, { kind: 'placed', epoch: lost.next.epoch, workerId: 'w1' });
      if (placed.outcome !== 'applied') throw new Error('not placed');
      session = placed.next;
    }
    // Equal jitter at 0.5: three quarters of 1 s, 2 s, 4 s, 8 s.
    expect(delays).toEqual([750, 1500, 3000, 6000]);
    const connected = apply(session, { ...events.engineConnected, epoch: session.epoch });
    expect(connected.outcome === 'applied' && connected.next).toMatchObject({ failedAttempts: 0, placeAfter: null });
  });

  it('caps the backoff at five minutes, and spreads it with the jitter', () => {
    expect(retryDelayMs(30, 0)).toBe(150_000);
    expect(retryDelayMs(30, 0.999999)).toBeCloseTo(300_000, -1);
    expect(retryDelayMs(1, 0)).toBe(500);
  });

  it('clears the backoff when the tenant asks again', () => {
    const waiting: SessionStanding = {
      ...fixtures.PENDING,
      failedAttempts: 3,
      placeAfter: new Date('2026-01-01T00:05:00Z'),
    };
    for (const name of ['start', 'stop', 'restart', 'logout', 'delete'] as const) {
      const plan = planSessionCommand(waiting, commands[name]);
      expect(plan.next, name).toMatchObject({ failedAttempts: 0, placeAfter: null });
    }
  });
});
