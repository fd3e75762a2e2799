import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { timestampDate, timestampFromDate, TimestampSchema } from '@bufbuild/protobuf/wkt';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { Engine as EngineEnum } from '../../gen/switchboard/v1/fleet_pb.js';
import {
  AssignSessionSchema,
  LogoutSessionSchema,
  OutboundMessageSchema,
  RequestSchema,
  StopSessionSchema,
} from '../../gen/switchboard/v1/worker_pb.js';
import type { Engine, EngineKind, EngineSession, EngineSessionInput } from '../../agent/engines/engine.js';
import { EngineError } from '../../agent/engines/engine-error.js';
import { createSandboxEngine, type SandboxEngine } from '../../agent/engines/sandbox.engine.js';
import { derivedMessageId } from '../../agent/engines/whatsapp-format.js';
import { ManualScheduler } from '../../lib/timers.js';
import { toResponseError } from '../../agent/sessions/response-error.js';
import {
  SessionHost,
  type CommandAckInit,
  type ResponseInit,
  type SessionEventInit,
} from '../../agent/sessions/session-host.js';
import { DomainError } from '../../lib/errors.js';

const logger = pino({ level: 'silent' });
const PHONE = '15551234567';

/** Everything the host sent, in order: acks and responses as well as events, to check what comes first. */
type Wire =
  | { kind: 'ack'; ack: CommandAckInit }
  | { kind: 'response'; response: ResponseInit }
  | { kind: 'event'; event: SessionEventInit };

/**
 * A stand-in for an engine other than the sandbox: it starts at once, never
 * answers sendText or requestPairingCode, and on stop() flushes a final
 * checkpoint before `ended`, as Baileys does.
 */
class StubEngine implements Engine {
  readonly kind = 'BAILEYS' as const;
  openSession(input: EngineSessionInput): EngineSession {
    return {
      start: async () => undefined,
      stop: async () => {
        input.onEvent({ kind: 'authCheckpoint', state: new Uint8Array([1, 2, 3]) });
        input.onEvent({ kind: 'ended', reason: 'STOPPED', detail: 'stopped' });
      },
      logout: async () => input.onEvent({ kind: 'ended', reason: 'LOGGED_OUT', detail: 'logged out' }),
      sendText: () => new Promise(() => undefined),
      requestPairingCode: () => new Promise(() => undefined),
    };
  }
}

function harness(options: { offer?: EngineKind[]; capacity?: number } = {}) {
  const time = new ManualScheduler();
  const sandbox: SandboxEngine = createSandboxEngine({ clock: time, scheduler: time, seed: 'session-host' });
  const offered = options.offer ?? ['SANDBOX', 'BAILEYS'];
  const engines = new Map<EngineKind, Engine>();
  if (offered.includes('SANDBOX')) engines.set('SANDBOX', sandbox);
  if (offered.includes('BAILEYS')) engines.set('BAILEYS', new StubEngine());
  const wire: Wire[] = [];
  const host = new SessionHost({
    engines,
    capacity: options.capacity ?? 10,
    send: (event) => wire.push({ kind: 'event', event }),
    logger,
    clock: time,
    scheduler: time,
  });
  const acked = async (call: (ack: (ack: CommandAckInit) => void) => Promise<void>) => {
    const answers: CommandAckInit[] = [];
    await call((ack) => {
      answers.push(ack);
      wire.push({ kind: 'ack', ack });
    });
    expect(answers).toHaveLength(1);
    return answers[0] as CommandAckInit;
  };
  const assign = (sessionId: string, epoch: number, extra: { engine?: EngineEnum; authState?: Uint8Array } = {}) =>
    acked((ack) =>
      host.assign(
        create(AssignSessionSchema, {
          sessionId,
          epoch,
          engine: extra.engine ?? EngineEnum.SANDBOX,
          authState: extra.authState ?? new Uint8Array(),
        }),
        ack,
      ),
    );
  const stop = (sessionId: string, epoch: number) =>
    acked((ack) => host.stop(create(StopSessionSchema, { sessionId, epoch, reason: 'test' }), ack));
  const logout = (sessionId: string, epoch: number) =>
    acked((ack) => host.logout(create(LogoutSessionSchema, { sessionId, epoch }), ack));
  /** Starts a request without waiting for its answer. */
  const requestStarted = (init: MessageInitShape<typeof RequestSchema>) => {
    const answers: ResponseInit[] = [];
    const done = host.handleRequest(create(RequestSchema, init), (response) => {
      answers.push(response);
      wire.push({ kind: 'response', response });
    });
    return {
      answers,
      answered: async () => {
        await done;
        expect(answers).toHaveLength(1);
        return (answers[0] as ResponseInit).result;
      },
    };
  };
  const request = (init: MessageInitShape<typeof RequestSchema>) => requestStarted(init).answered();
  const events = (sessionId?: string) =>
    wire.flatMap((item) =>
      item.kind === 'event' && (sessionId === undefined || item.event.sessionId === sessionId) ? [item.event] : [],
    );
  const eventCases = (sessionId?: string) => events(sessionId).map((event) => event.event?.case);
  return { time, sandbox, host, wire, assign, stop, logout, request, requestStarted, events, eventCases };
}

/** Assigns `sessionId` under `epoch` and scans its QR code: returns the harness with it connected. */
async function linkedSession(h: ReturnType<typeof harness>, sessionId = 's1', epoch = 1) {
  expect(await h.assign(sessionId, epoch)).toMatchObject({ accepted: true });
  const done = await h.request({
    sessionId,
    epoch,
    action: { case: 'sandboxScan', value: { phoneNumber: PHONE, pushName: 'Ada' } },
  });
  expect(done).toEqual({ case: 'done', value: true });
}

function dateOf(timestamp: MessageInitShape<typeof TimestampSchema> | undefined): Date | undefined {
  return timestamp === undefined ? undefined : timestampDate(create(TimestampSchema, timestamp));
}

function errorOf(result: ResponseInit['result']) {
  if (result?.case !== 'error') throw new Error(`expected an error, got ${JSON.stringify(result?.case)}`);
  return result.value;
}

describe('session host: assignments', () => {
  it('starts an assigned session and forwards its QR code stamped with the session id and epoch, after the ack', async () => {
    const h = harness();
    const ack = await h.assign('s1', 7);

    expect(ack).toEqual({ accepted: true, detail: 'running under epoch 7' });
    expect(h.wire.map((item) => item.kind)).toEqual(['ack', 'event']);
    const [qr] = h.events();
    expect(qr).toMatchObject({
      sessionId: 's1',
      epoch: 7,
      event: { case: 'qr', value: { sequence: 1, payload: expect.stringMatching(/^2@/) } },
    });
    expect(dateOf(qr?.occurredAt)).toEqual(h.time.now());
    expect(h.host.held()).toEqual([{ sessionId: 's1', epoch: 7 }]);
  });

  it('resumes from a checkpoint given with the assignment: connected, without a QR code', async () => {
    const first = harness();
    await linkedSession(first);
    const checkpoint = first.events().find((event) => event.event?.case === 'authCheckpoint')?.event?.value;
    if (checkpoint === undefined || !('state' in checkpoint) || !(checkpoint.state instanceof Uint8Array)) {
      throw new Error('no checkpoint was forwarded');
    }

    const second = harness();
    expect(await second.assign('s1', 2, { authState: checkpoint.state })).toMatchObject({ accepted: true });
    expect(second.eventCases()).toEqual(['connected']);
    expect(second.events()[0]).toMatchObject({ epoch: 2, event: { value: { phoneNumber: PHONE, pushName: 'Ada' } } });
  });

  it('refuses an epoch older than the one held, and keeps the held session running', async () => {
    const h = harness();
    await h.assign('s1', 5);

    const ack = await h.assign('s1', 4);

    expect(ack.accepted).toBe(false);
    expect(ack.detail).toBe('FAILED_PRECONDITION: epoch 4 is older than the epoch held here (5)');
    expect(h.host.held()).toEqual([{ sessionId: 's1', epoch: 5 }]);
    expect(h.sandbox.controls('s1').state).toBe('pairing');
  });

  it('replaces a session held under an older epoch, without a word from the old one', async () => {
    const h = harness();
    await h.assign('s1', 1);
    const oldQr = h.sandbox.controls('s1').currentQr()?.payload;

    const ack = await h.assign('s1', 2);

    expect(ack).toEqual({ accepted: true, detail: 'running under epoch 2' });
    // The old assignment's `ended STOPPED` stays here; only the new QR code goes up.
    expect(h.events().map((event) => [event.epoch, event.event?.case])).toEqual([
      [1, 'qr'],
      [2, 'qr'],
    ]);
    expect(h.sandbox.controls('s1').currentQr()?.payload).not.toBe(oldQr);
    expect(h.host.held()).toEqual([{ sessionId: 's1', epoch: 2 }]);
    expect(h.host.count).toBe(1);
  });

  it('accepts the same epoch again without restarting the session', async () => {
    const h = harness();
    await h.assign('s1', 3);
    const qr = h.sandbox.controls('s1').currentQr();

    expect(await h.assign('s1', 3)).toMatchObject({ accepted: true });
    expect(h.sandbox.controls('s1').currentQr()).toEqual(qr);
    expect(h.eventCases()).toEqual(['qr']);
  });

  it('refuses an engine this worker does not offer, and holds nothing', async () => {
    const h = harness({ offer: ['SANDBOX'] });

    const ack = await h.assign('s1', 1, { engine: EngineEnum.BAILEYS });

    expect(ack).toEqual({
      accepted: false,
      detail: 'FAILED_PRECONDITION: this worker does not offer the BAILEYS engine (it offers SANDBOX)',
    });
    expect(h.host.count).toBe(0);
  });

  it('refuses an unspecified engine as INVALID_ARGUMENT', async () => {
    const h = harness();
    expect((await h.assign('s1', 1, { engine: EngineEnum.UNSPECIFIED })).detail).toMatch(/^INVALID_ARGUMENT: /);
  });

  it('refuses an auth state the engine cannot read, and holds nothing', async () => {
    const h = harness();

    const ack = await h.assign('s1', 1, { authState: new TextEncoder().encode('not json') });

    expect(ack.accepted).toBe(false);
    expect(ack.detail).toMatch(/^INVALID_ARGUMENT: /);
    expect(h.host.count).toBe(0);
    expect(h.events()).toEqual([]);
  });

  it('refuses a new session once the worker holds its capacity', async () => {
    const h = harness({ capacity: 1 });
    await h.assign('s1', 1);

    expect(await h.assign('s2', 1)).toEqual({
      accepted: false,
      detail: 'RESOURCE_EXHAUSTED: this worker is full (1 sessions)',
    });
    expect((await h.assign('s1', 2)).accepted).toBe(true);
  });

  it('lists every held session with its epoch, and counts them', async () => {
    const h = harness();
    await h.assign('a', 1);
    await h.assign('b', 4, { engine: EngineEnum.BAILEYS });

    expect(h.host.held()).toEqual([
      { sessionId: 'a', epoch: 1 },
      { sessionId: 'b', epoch: 4 },
    ]);
    expect(h.host.count).toBe(2);
  });
});

describe('session host: requests', () => {
  it('links a session on sandbox_scan of the current QR code: authCheckpoint and connected go up, then done', async () => {
    const h = harness();
    await h.assign('s1', 2);

    const result = await h.request({
      sessionId: 's1',
      epoch: 2,
      action: { case: 'sandboxScan', value: { phoneNumber: PHONE, pushName: 'Ada' } },
    });

    expect(result).toEqual({ case: 'done', value: true });
    expect(h.wire.map((item) => (item.kind === 'event' ? item.event.event?.case : item.kind))).toEqual([
      'ack',
      'qr',
      'authCheckpoint',
      'connected',
      'response',
    ]);
    expect(h.events().at(-1)).toMatchObject({
      sessionId: 's1',
      epoch: 2,
      event: {
        case: 'connected',
        value: { jid: `${PHONE}@s.whatsapp.net`, phoneNumber: PHONE, pushName: 'Ada' },
      },
    });
  });

  it('answers an expired QR code scan with FAILED_PRECONDITION', async () => {
    const h = harness();
    await h.assign('s1', 1);
    const first = h.sandbox.controls('s1').currentQr()?.payload ?? '';
    h.time.advance(60_000);

    const result = await h.request({
      sessionId: 's1',
      epoch: 1,
      action: { case: 'sandboxScan', value: { phoneNumber: PHONE, qrPayload: first } },
    });

    expect(errorOf(result).code).toBe('FAILED_PRECONDITION');
    expect(errorOf(result).message).toMatch(/QR code #1 expired/);
  });

  it('answers send_text with the message id, then SENT, DELIVERED and READ follow as message_status events', async () => {
    const h = harness();
    await linkedSession(h);

    const result = await h.request({
      sessionId: 's1',
      epoch: 1,
      action: { case: 'sendText', value: { to: '15557654321', text: 'hello' } },
    });

    expect(result?.case).toBe('messageId');
    const messageId = result?.value;
    expect(messageId).toMatch(/^3EB0[0-9A-F]{16}$/);
    h.time.advance(1_000);
    const statuses = h.events().flatMap((event) => (event.event?.case === 'messageStatus' ? [event.event.value] : []));
    expect(statuses.map(({ messageId: id, status }) => [id, status])).toEqual([
      [messageId, 'SENT'],
      [messageId, 'DELIVERED'],
      [messageId, 'READ'],
    ]);
    expect(
      h
        .events()
        .slice(-3)
        .map((event) => event.epoch),
    ).toEqual([1, 1, 1]);
  });

  it('answers send_text to a malformed recipient with INVALID_ARGUMENT and a not-connected session with FAILED_PRECONDITION', async () => {
    const h = harness();
    await h.assign('pairing', 1);
    await linkedSession(h, 'linked');
    const send = (sessionId: string, to: string) =>
      h.request({ sessionId, epoch: 1, action: { case: 'sendText', value: { to, text: 'hi' } } });

    expect(errorOf(await send('linked', 'not a number')).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(await send('pairing', PHONE)).code).toBe('FAILED_PRECONDITION');
  });

  it('answers sandbox_inbound with the injected message id and forwards it as inbound_message', async () => {
    const h = harness();
    await linkedSession(h);

    const result = await h.request({
      sessionId: 's1',
      epoch: 1,
      action: { case: 'sandboxInbound', value: { from: '15550001111', text: 'ping' } },
    });

    expect(result?.case).toBe('messageId');
    expect(h.events().at(-1)).toMatchObject({
      event: {
        case: 'inboundMessage',
        value: { messageId: result?.value, from: '15550001111@s.whatsapp.net', text: 'ping' },
      },
    });
  });

  it('answers request_pairing_code with the code and its expiry, and sends no pairing event up', async () => {
    const h = harness();
    await h.assign('s1', 1);

    const result = await h.request({
      sessionId: 's1',
      epoch: 1,
      action: { case: 'requestPairingCode', value: { phoneNumber: PHONE } },
    });

    if (result?.case !== 'pairingCode') throw new Error(`expected a pairing code, got ${result?.case}`);
    expect(result.value.code).toMatch(/^[1-9A-HJ-NP-TV-Z]{8}$/);
    // The pairing window: 60 s for the first QR code plus 5 x 20 s.
    expect(dateOf(result.value.expiresAt)).toEqual(new Date(h.time.now().getTime() + 160_000));
    expect(h.eventCases()).toEqual(['qr']);
  });

  it('refuses sandbox actions on a session that is not on the sandbox with FAILED_PRECONDITION', async () => {
    const h = harness();
    await h.assign('b1', 1, { engine: EngineEnum.BAILEYS });

    for (const action of [
      { case: 'sandboxScan', value: { phoneNumber: PHONE } },
      { case: 'sandboxInbound', value: { from: PHONE, text: 'hi' } },
    ] as const) {
      const error = errorOf(await h.request({ sessionId: 'b1', epoch: 1, action }));
      expect(error).toEqual({
        code: 'FAILED_PRECONDITION',
        message: 'sandbox actions need a SANDBOX session; this one runs on BAILEYS',
      });
    }
  });

  it('answers NOT_FOUND for a session not held here, and INVALID_ARGUMENT for a request without an action', async () => {
    const h = harness();
    await h.assign('s1', 1);

    expect(errorOf(await h.request({ sessionId: 'nope', epoch: 1, action: { case: undefined } })).code).toBe(
      'NOT_FOUND',
    );
    expect(errorOf(await h.request({ sessionId: 's1', epoch: 1 })).code).toBe('INVALID_ARGUMENT');
  });

  it('runs a request that arrives while its session is still being assigned once the assignment is done', async () => {
    const h = harness();
    await h.assign('s1', 1);
    const replacing = h.assign('s1', 2);

    const result = await h.request({
      sessionId: 's1',
      epoch: 2,
      action: { case: 'sandboxScan', value: { phoneNumber: PHONE } },
    });

    expect(await replacing).toMatchObject({ accepted: true });
    expect(result).toEqual({ case: 'done', value: true });
    expect(h.events().at(-1)).toMatchObject({ epoch: 2, event: { case: 'connected' } });
  });

  it('answers DEADLINE_EXCEEDED when the engine has not answered by the deadline', async () => {
    const h = harness();
    await h.assign('b1', 1, { engine: EngineEnum.BAILEYS });
    const deadline = new Date(h.time.now().getTime() + 2_000);

    const pending = h.requestStarted({
      sessionId: 'b1',
      epoch: 1,
      deadline: timestampFromDate(deadline),
      action: { case: 'sendText', value: { to: PHONE, text: 'slow' } },
    });
    h.time.advance(1_999);
    await Promise.resolve();
    expect(pending.answers).toEqual([]);
    h.time.advance(1);

    const error = errorOf(await pending.answered());
    expect(error.code).toBe('DEADLINE_EXCEEDED');
    expect(h.time.pendingTimers).toBe(0);
  });

  it('does nothing and answers DEADLINE_EXCEEDED when the deadline had passed on arrival', async () => {
    const h = harness();
    await linkedSession(h);
    const before = h.events().length;

    const result = await h.request({
      sessionId: 's1',
      epoch: 1,
      deadline: timestampFromDate(new Date(h.time.now().getTime() - 1)),
      action: { case: 'sendText', value: { to: '15557654321', text: 'too late' } },
    });

    expect(errorOf(result)).toEqual({
      code: 'DEADLINE_EXCEEDED',
      message: 'the deadline had passed when the request arrived; nothing was done',
    });
    h.time.advance(10_000);
    expect(h.events()).toHaveLength(before);
  });
});

describe('session host: stale epochs', () => {
  it('refuses stop, logout and requests under another epoch, and the session keeps running', async () => {
    const h = harness();
    await linkedSession(h, 's1', 3);
    const detail = 'FAILED_PRECONDITION: session "s1" is held here under epoch 3, not 2';

    expect(await h.stop('s1', 2)).toEqual({ accepted: false, detail });
    expect(await h.logout('s1', 2)).toEqual({ accepted: false, detail });
    expect(await h.logout('s1', 4)).toMatchObject({ accepted: false });
    const result = await h.request({
      sessionId: 's1',
      epoch: 2,
      action: { case: 'sendText', value: { to: PHONE, text: 'stale' } },
    });
    expect(errorOf(result)).toEqual({
      code: 'FAILED_PRECONDITION',
      message: 'session "s1" is held here under epoch 3, not 2',
    });

    expect(h.sandbox.controls('s1').state).toBe('connected');
    expect(h.host.held()).toEqual([{ sessionId: 's1', epoch: 3 }]);
  });
});

describe('session host: ending sessions', () => {
  it('stops a session on StopSession: ended STOPPED goes up, then the ack, and it is no longer held', async () => {
    const h = harness();
    await linkedSession(h);

    expect(await h.stop('s1', 1)).toEqual({ accepted: true, detail: 'stopped; auth state kept' });

    expect(h.wire.slice(-2).map((item) => (item.kind === 'event' ? item.event.event?.case : item.kind))).toEqual([
      'ended',
      'ack',
    ]);
    expect(h.events().at(-1)?.event).toMatchObject({ case: 'ended', value: { reason: 'STOPPED' } });
    expect(h.host.count).toBe(0);
  });

  it('accepts StopSession for a session not held here (nothing to stop)', async () => {
    const h = harness();
    expect(await h.stop('gone', 9)).toEqual({ accepted: true, detail: 'not held here; nothing to stop' });
  });

  it('logs a session out on LogoutSession: ended LOGGED_OUT goes up; NOT_FOUND when not held', async () => {
    const h = harness();
    await linkedSession(h);

    expect(await h.logout('s1', 1)).toMatchObject({ accepted: true });
    expect(h.events().at(-1)?.event).toMatchObject({ case: 'ended', value: { reason: 'LOGGED_OUT' } });
    expect(h.host.count).toBe(0);
    expect((await h.logout('s1', 1)).detail).toMatch(/^NOT_FOUND: /);
  });

  it('forwards an end the engine reached by itself, then forgets the session', async () => {
    const h = harness();
    await h.assign('s1', 1);

    h.time.advance(160_000);

    expect(h.events().at(-1)).toMatchObject({
      epoch: 1,
      event: { case: 'ended', value: { reason: 'QR_TIMEOUT' } },
    });
    expect(h.host.held()).toEqual([]);
  });

  it('stopAll when fenced stops every session and sends nothing more about them', async () => {
    const h = harness();
    await linkedSession(h, 'a');
    await h.assign('b', 1, { engine: EngineEnum.BAILEYS });
    const before = h.wire.length;

    await h.host.stopAll('fenced', 'fenced');

    expect(h.wire).toHaveLength(before);
    expect(h.host.held()).toEqual([]);
    expect(h.sandbox.openSessionCount).toBe(0);
    expect(h.time.pendingTimers).toBe(0);
    // The host takes new assignments afterwards (after the reconnect).
    expect(await h.assign('a', 2)).toMatchObject({ accepted: true });
  });

  it('stopAll at shutdown sends final auth checkpoints up, but no ended', async () => {
    const h = harness();
    await h.assign('b', 1, { engine: EngineEnum.BAILEYS });

    await h.host.stopAll('agent stopping', 'shutdown');

    expect(h.eventCases()).toEqual(['authCheckpoint']);
    expect(h.events()[0]).toMatchObject({ sessionId: 'b', epoch: 1 });
    expect(h.host.count).toBe(0);
  });

  it('is idle once no session is held and the command that stopped the last one was answered', async () => {
    const h = harness();
    await h.assign('a', 1);
    await h.assign('b', 1);
    let wireWhenIdle: number | undefined;
    void h.host.whenIdle().then(() => {
      wireWhenIdle = h.wire.length;
    });

    await h.stop('a', 1);
    await new Promise((resolve) => setImmediate(resolve));
    expect(wireWhenIdle).toBeUndefined();

    await h.stop('b', 1);
    await new Promise((resolve) => setImmediate(resolve));
    // Not when `b` left the host, but after its ended and its ack went out.
    expect(wireWhenIdle).toBe(h.wire.length);
    expect(h.wire.at(-1)).toMatchObject({ kind: 'ack', ack: { accepted: true } });
    await expect(h.host.whenIdle()).resolves.toBeUndefined();
  });

  it('refuses an assignment received before stopAll ran but not yet carried out', async () => {
    const h = harness();
    await h.assign('s1', 1);
    const replacing = h.assign('s1', 2);
    const stopping = h.host.stopAll('fenced', 'fenced');

    const ack = await replacing;
    await stopping;

    expect(ack.accepted).toBe(false);
    expect(ack.detail).toMatch(/^UNAVAILABLE: /);
    expect(h.host.held()).toEqual([]);
    expect(h.sandbox.openSessionCount).toBe(0);
  });
});

describe('response errors', () => {
  it.each([
    [new EngineError('INVALID_RECIPIENT', 'x'), 'INVALID_ARGUMENT'],
    [new EngineError('NOT_CONNECTED', 'x'), 'FAILED_PRECONDITION'],
    [new EngineError('QR_EXPIRED', 'x'), 'FAILED_PRECONDITION'],
    [new EngineError('QR_UNKNOWN', 'x'), 'INVALID_ARGUMENT'],
    [new EngineError('UNKNOWN_SESSION', 'x'), 'NOT_FOUND'],
    [new DomainError('UNAVAILABLE', 'x'), 'UNAVAILABLE'],
    [new DomainError('FAILED_PRECONDITION', 'x'), 'FAILED_PRECONDITION'],
  ])('maps %o to %s', (error, code) => {
    expect(toResponseError(error)).toEqual({ code, message: 'x', unexpected: false });
  });

  it('keeps the message of an unexpected error out of the answer', () => {
    expect(toResponseError(new TypeError('secret internals'))).toEqual({
      code: 'INTERNAL',
      message: 'the session failed unexpectedly; see the agent log',
      unexpected: true,
    });
  });
});

describe('session host: dispatched messages', () => {
  const S = '5e55e55e-0000-4000-8000-000000000001';
  const id = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
  const outbound = (n: number, epoch = 1, sessionId = S) =>
    create(OutboundMessageSchema, {
      sessionId,
      epoch,
      messageId: id(n),
      content: { case: 'text', value: { to: '15557654321', text: `message ${n}` } },
    });
  const outcomes = (h: ReturnType<typeof harness>) =>
    h.events(S).flatMap((event) => {
      const e = event.event;
      if (e?.case === 'messageSent') return [[e.value.messageId, 'sent', e.value.whatsappMessageId]];
      if (e?.case === 'messageFailed') return [[e.value.messageId, e.value.code]];
      return [];
    });
  const settle = () => new Promise((resolve) => setImmediate(resolve));

  it('sends them in order under our ids and reports message_sent with the WhatsApp id, then the receipts', async () => {
    const h = harness();
    await linkedSession(h, S);

    h.host.dispatch([outbound(1), outbound(2), outbound(3)]);
    await settle();
    h.time.advance(1_000);

    expect(outcomes(h)).toEqual([1, 2, 3].map((n) => [id(n), 'sent', derivedMessageId(id(n), 16)]));
    const first = h.events(S).find((event) => event.event?.case === 'messageSent');
    expect(first).toMatchObject({ sessionId: S, epoch: 1 });
    const statuses = h.events(S).flatMap((event) => (event.event?.case === 'messageStatus' ? [event.event.value] : []));
    expect(statuses.filter((status) => status.messageId === derivedMessageId(id(1), 16)).map((s) => s.status)).toEqual([
      'SENT',
      'DELIVERED',
      'READ',
    ]);
  });

  it('drops messages for an epoch or a session not running here, answering nothing', async () => {
    const h = harness();
    await linkedSession(h, S, 2);
    const before = h.events().length;

    h.host.dispatch([outbound(1, 1), outbound(2, 3), outbound(3, 2, '5e55e55e-0000-4000-8000-000000000999')]);
    await settle();
    h.time.advance(1_000);

    expect(h.events().slice(before)).toEqual([]);
  });

  it('fails a message the session cannot send with FAILED_PRECONDITION (not connected yet)', async () => {
    const h = harness();
    await h.assign(S, 1);

    h.host.dispatch([outbound(1)]);
    await settle();

    expect(outcomes(h)).toEqual([[id(1), 'FAILED_PRECONDITION']]);
  });

  it('a repeated dispatch of a message already queued is not sent twice', async () => {
    const h = harness();
    await linkedSession(h, S);

    h.host.dispatch([outbound(1), outbound(1)]);
    h.host.dispatch([outbound(1)]);
    await settle();

    expect(outcomes(h)).toEqual([[id(1), 'sent', derivedMessageId(id(1), 16)]]);
  });

  it('on stop, reports the messages still waiting UNAVAILABLE before ended, so they are dispatched again', async () => {
    const h = harness({ offer: ['BAILEYS'] });
    // The stub engine never answers a send: the first stays in flight, the rest wait.
    expect(await h.assign(S, 1, { engine: EngineEnum.BAILEYS })).toMatchObject({ accepted: true });
    h.host.dispatch([outbound(1), outbound(2), outbound(3)]);
    await settle();

    await h.stop(S, 1);

    expect(outcomes(h)).toEqual([
      [id(2), 'UNAVAILABLE'],
      [id(3), 'UNAVAILABLE'],
    ]);
    const cases = h.eventCases(S);
    expect(cases.indexOf('ended')).toBeGreaterThan(cases.lastIndexOf('messageFailed'));
  });
});
