import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { EngineEvent } from '../../agent/engines/engine.js';
import { EngineError } from '../../agent/engines/engine-error.js';
import { decodeAuthState, SANDBOX_AUTH_FORMAT, SANDBOX_AUTH_VERSION } from '../../agent/engines/sandbox-auth-state.js';
import { SandboxNetwork } from '../../agent/engines/sandbox-network.js';
import {
  compileSandboxOptions,
  createSandboxEngine,
  defaultQrSchedule,
  defaultReceiptDelays,
  type SandboxEngine,
  type SandboxEngineOptions,
} from '../../agent/engines/sandbox.engine.js';
import { ManualScheduler, type Scheduler } from '../../lib/timers.js';
import { ManualClock } from '../../lib/clock.js';
import { formatPairingCode, PAIRING_CODE_ALPHABET } from '../../agent/engines/whatsapp-format.js';

const logger = pino({ level: 'silent' });
const PHONE = { phoneNumber: '15551234567', pushName: 'Ada' };
const B64_32 = '[A-Za-z0-9+/]{43}=';
const QR_SHAPE = new RegExp(`^2@[A-Za-z0-9+/]+={0,2},${B64_32},${B64_32},${B64_32}$`);

/** One fake clock and scheduler, and engines on it that record every event. */
function sandbox(options: SandboxEngineOptions = {}) {
  const time = new ManualScheduler();
  const start = time.now().getTime();
  const at = (ms: number) => new Date(start + ms);
  const engine = (extra: SandboxEngineOptions = {}) =>
    createSandboxEngine({ clock: time, scheduler: time, ...options, ...extra });
  const open = (on: SandboxEngine, sessionId = 's1', authState: Uint8Array | null = null) => {
    const events: EngineEvent[] = [];
    const session = on.openSession({ sessionId, authState, onEvent: (event) => events.push(event), logger });
    return { session, events, kinds: () => events.map((event) => event.kind) };
  };
  return { time, at, engine, open };
}

function errorCode(call: () => unknown): string {
  try {
    call();
  } catch (error) {
    return error instanceof EngineError ? error.code : `not an EngineError: ${String(error)}`;
  }
  return 'no error';
}

async function rejectionCode(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return error instanceof EngineError ? error.code : `not an EngineError: ${String(error)}`;
  }
  return 'no error';
}

function qrEvents(events: EngineEvent[]) {
  return events.flatMap((event) => (event.kind === 'qr' ? [event] : []));
}

function lastQr(events: EngineEvent[]) {
  const qrs = qrEvents(events);
  const last = qrs[qrs.length - 1];
  if (last === undefined) throw new Error('no QR code was shown');
  return last;
}

function checkpointOf(events: EngineEvent[]): Uint8Array {
  const checkpoint = events.find((event) => event.kind === 'authCheckpoint');
  if (checkpoint?.kind !== 'authCheckpoint') throw new Error('no auth checkpoint was emitted');
  return checkpoint.state;
}

/** Starts a session and scans its first QR code; returns it linked. */
async function linked(s: ReturnType<typeof sandbox>, on: SandboxEngine, sessionId = 's1', phone = PHONE) {
  const opened = s.open(on, sessionId);
  await opened.session.start();
  opened.session.controls.scanQr(lastQr(opened.events).payload, phone);
  return opened;
}

describe('sandbox engine: pairing by QR code', () => {
  it("shows QR codes on WhatsApp's schedule: the first for 60 s, each later one for 20 s", async () => {
    const s = sandbox();
    const { session, events } = s.open(s.engine());
    await session.start();

    expect(qrEvents(events)).toEqual([
      { kind: 'qr', payload: expect.any(String), expiresAt: s.at(60_000), sequence: 1 },
    ]);
    s.time.advance(59_999);
    expect(qrEvents(events)).toHaveLength(1);
    s.time.advance(1);
    expect(qrEvents(events).map(({ sequence, expiresAt }) => [sequence, expiresAt])).toEqual([
      [1, s.at(60_000)],
      [2, s.at(80_000)],
    ]);
    s.time.advance(40_000);
    expect(qrEvents(events).map(({ sequence, expiresAt }) => [sequence, expiresAt])).toEqual([
      [1, s.at(60_000)],
      [2, s.at(80_000)],
      [3, s.at(100_000)],
      [4, s.at(120_000)],
    ]);
    expect(session.controls.currentQr()).toEqual({
      payload: lastQr(events).payload,
      expiresAt: s.at(120_000),
      sequence: 4,
    });
  });

  it("encodes WhatsApp's payload: a fresh ref per code, then the same device's noise key, identity key and ADV secret", async () => {
    const s = sandbox();
    const { session, events } = s.open(s.engine());
    await session.start();
    s.time.advance(60_000);
    const [first, second] = qrEvents(events).map((qr) => qr.payload.split(','));
    for (const payload of qrEvents(events).map((qr) => qr.payload)) expect(payload).toMatch(QR_SHAPE);
    expect(first?.[0]).not.toBe(second?.[0]);
    expect(first?.slice(1)).toEqual(second?.slice(1));
    expect(new Set(first?.slice(1)).size).toBe(3);
  });

  it('ends with QR_TIMEOUT once every code went unscanned (6 by default, 160 s), leaving no timer behind', async () => {
    const s = sandbox();
    const { session, events, kinds } = s.open(s.engine());
    await session.start();
    s.time.advance(159_999);
    expect(kinds()).toEqual(['qr', 'qr', 'qr', 'qr', 'qr', 'qr']);
    s.time.advance(1);
    expect(events.at(-1)).toEqual({ kind: 'ended', reason: 'QR_TIMEOUT', detail: '6 QR codes went unscanned' });
    expect(session.state).toBe('ended');
    expect(s.time.pendingTimers).toBe(0);
    s.time.advance(600_000);
    expect(events).toHaveLength(7);
  });

  it('takes the schedule from the options (tests use short ones)', async () => {
    const s = sandbox({ qr: { firstTtlMs: 1_000, nextTtlMs: 200, maxCodes: 3 } });
    const { session, events, kinds } = s.open(s.engine());
    await session.start();
    s.time.advance(1_399);
    expect(kinds()).toEqual(['qr', 'qr', 'qr']);
    expect(qrEvents(events).map((qr) => qr.expiresAt)).toEqual([s.at(1_000), s.at(1_200), s.at(1_400)]);
    s.time.advance(1);
    expect(kinds()).toEqual(['qr', 'qr', 'qr', 'ended']);
  });

  it('links when the current code is scanned: checkpoint first, then connected, QR timers gone', async () => {
    const s = sandbox();
    const { session, events, kinds } = s.open(s.engine());
    await session.start();
    s.time.advance(60_000);
    session.controls.scanQr(lastQr(events).payload, PHONE);

    expect(kinds()).toEqual(['qr', 'qr', 'authCheckpoint', 'connected']);
    expect(events.at(-1)).toEqual({
      kind: 'connected',
      identity: { jid: '15551234567@s.whatsapp.net', phoneNumber: '15551234567', pushName: 'Ada' },
    });
    expect(session.state).toBe('connected');
    expect(session.controls.currentQr()).toBeUndefined();
    expect(s.time.pendingTimers).toBe(0);
    s.time.advance(600_000);
    expect(events).toHaveLength(4);
  });

  it('refuses an expired code (QR_EXPIRED), a code it never showed (QR_UNKNOWN) and a bad phone number', async () => {
    const s = sandbox();
    const { session, events } = s.open(s.engine());
    await session.start();
    const first = lastQr(events).payload;
    s.time.advance(60_000);
    const current = lastQr(events).payload;

    expect(errorCode(() => session.controls.scanQr(first, PHONE))).toBe('QR_EXPIRED');
    // A code it never showed: the current one with its ref changed (to a character it does not already have).
    const forged = current.replace(/^2@(.)/, (_match, c: string) => `2@${c === 'x' ? 'y' : 'x'}`);
    expect(forged).not.toBe(current);
    expect(errorCode(() => session.controls.scanQr(forged, PHONE))).toBe('QR_UNKNOWN');
    expect(errorCode(() => session.controls.scanQr('not a qr code', PHONE))).toBe('QR_UNKNOWN');
    expect(errorCode(() => session.controls.scanQr(current, { phoneNumber: '555-1234' }))).toBe('INVALID_PHONE_NUMBER');
    expect(session.state).toBe('pairing');

    session.controls.scanQr(current, PHONE);
    expect(errorCode(() => session.controls.scanQr(current, PHONE))).toBe('INVALID_STATE');
  });

  it('refuses a code past its expiry even when the rotation timer runs late', async () => {
    const clock = new ManualClock();
    const lateTimers: Scheduler = { schedule: () => ({ cancel: () => undefined }) };
    const engine = createSandboxEngine({ clock, scheduler: lateTimers });
    const events: EngineEvent[] = [];
    const session = engine.openSession({ sessionId: 's1', authState: null, onEvent: (e) => events.push(e), logger });
    await session.start();
    clock.advance(60_000);
    expect(errorCode(() => session.controls.scanQr(lastQr(events).payload, PHONE))).toBe('QR_EXPIRED');
  });

  it('cannot be scanned before start() or after the session ended', async () => {
    const s = sandbox();
    const { session, events } = s.open(s.engine());
    expect(errorCode(() => session.controls.scanQr('2@x,a,b,c', PHONE))).toBe('INVALID_STATE');
    await session.start();
    const payload = lastQr(events).payload;
    await session.stop();
    expect(errorCode(() => session.controls.scanQr(payload, PHONE))).toBe('INVALID_STATE');
  });
});

describe('sandbox engine: pairing by phone number', () => {
  it('returns an 8-character code in WhatsApp’s alphabet, valid until the pairing window closes', async () => {
    const s = sandbox();
    const { session, events } = s.open(s.engine());
    await session.start();
    s.time.advance(10_000);
    const code = await session.requestPairingCode('+15551234567');

    expect(code).toMatch(new RegExp(`^[${PAIRING_CODE_ALPHABET}]{8}$`));
    expect(events.at(-1)).toEqual({ kind: 'pairingCode', code, expiresAt: s.at(160_000) });
    expect(formatPairingCode(code)).toBe(`${code.slice(0, 4)}-${code.slice(4)}`);
  });

  it('links to the requested number when the code is typed, grouped or not, in any case', async () => {
    const s = sandbox();
    const { session, events, kinds } = s.open(s.engine());
    await session.start();
    const code = await session.requestPairingCode('15557654321');
    session.controls.enterPairingCode(formatPairingCode(code).toLowerCase(), { pushName: 'Grace' });

    expect(kinds()).toEqual(['qr', 'pairingCode', 'authCheckpoint', 'connected']);
    expect(events.at(-1)).toEqual({
      kind: 'connected',
      identity: { jid: '15557654321@s.whatsapp.net', phoneNumber: '15557654321', pushName: 'Grace' },
    });
    expect(s.time.pendingTimers).toBe(0);
  });

  it('refuses a wrong code, a code never requested, a bad number, and requests outside pairing', async () => {
    const s = sandbox();
    const { session } = s.open(s.engine());
    expect(await rejectionCode(session.requestPairingCode('15551234567'))).toBe('INVALID_STATE');
    await session.start();
    expect(errorCode(() => session.controls.enterPairingCode('ABCD-EFGH'))).toBe('INVALID_STATE');
    expect(await rejectionCode(session.requestPairingCode('12345'))).toBe('INVALID_PHONE_NUMBER');

    const code = await session.requestPairingCode('15551234567');
    const wrong = code.startsWith('A') ? `B${code.slice(1)}` : `A${code.slice(1)}`;
    expect(errorCode(() => session.controls.enterPairingCode(wrong))).toBe('PAIRING_CODE_INVALID');
    expect(session.state).toBe('pairing');

    const again = await session.requestPairingCode('15551234567');
    expect(again).not.toBe(code);
    expect(errorCode(() => session.controls.enterPairingCode(code))).toBe('PAIRING_CODE_INVALID');
    session.controls.enterPairingCode(again);
    expect(await rejectionCode(session.requestPairingCode('15551234567'))).toBe('INVALID_STATE');
  });

  it('keeps showing QR codes while a pairing code waits, and times out the same way', async () => {
    const s = sandbox({ qr: { firstTtlMs: 1_000, nextTtlMs: 500, maxCodes: 2 } });
    const { session, events, kinds } = s.open(s.engine());
    await session.start();
    const code = await session.requestPairingCode('15551234567');
    s.time.advance(1_500);
    expect(kinds()).toEqual(['qr', 'pairingCode', 'qr', 'ended']);
    expect(events.at(-1)).toMatchObject({ reason: 'QR_TIMEOUT' });
    expect(errorCode(() => session.controls.enterPairingCode(code))).toBe('INVALID_STATE');
  });
});

describe('sandbox engine: auth state and resuming', () => {
  it('checkpoints a versioned JSON auth state with the device keys and the account', async () => {
    const s = sandbox();
    const { events } = await linked(s, s.engine());
    const state = checkpointOf(events);
    const json = JSON.parse(new TextDecoder().decode(state));

    expect(json).toMatchObject({
      format: SANDBOX_AUTH_FORMAT,
      version: SANDBOX_AUTH_VERSION,
      account: {
        jid: '15551234567@s.whatsapp.net',
        deviceJid: '15551234567:1@s.whatsapp.net',
        phoneNumber: '15551234567',
        pushName: 'Ada',
        linkedAt: s.at(0).toISOString(),
      },
    });
    const decoded = decodeAuthState(state);
    const qrKeys = lastQr(events).payload.split(',').slice(1);
    expect(qrKeys).toEqual([
      decoded.device.noiseKey.public.toString('base64'),
      decoded.device.identityKey.public.toString('base64'),
      decoded.device.advSecretKey.toString('base64'),
    ]);
    expect(decoded.device.registrationId).toBeGreaterThanOrEqual(1);
    expect(decoded.device.registrationId).toBeLessThanOrEqual(0x3fff);
  });

  it('resumes from the checkpoint on a new engine (another worker) straight to connected, without a QR code', async () => {
    const s = sandbox();
    const workerA = s.engine();
    const first = await linked(s, workerA);
    await first.session.stop();

    const workerB = s.engine();
    const resumed = s.open(workerB, 's1', checkpointOf(first.events));
    await resumed.session.start();

    expect(resumed.events).toEqual([
      {
        kind: 'connected',
        identity: { jid: '15551234567@s.whatsapp.net', phoneNumber: '15551234567', pushName: 'Ada' },
      },
    ]);
    const { messageId } = await resumed.session.sendText('15550000000', 'hello from worker B');
    expect(messageId).toMatch(/^3EB0[0-9A-F]{16}$/);
  });

  it('refuses an auth state it cannot use: start() rejects with INVALID_AUTH_STATE and nothing is emitted', async () => {
    const s = sandbox();
    const { events } = await linked(s, s.engine());
    const json = JSON.parse(new TextDecoder().decode(checkpointOf(events)));
    const encode = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
    const tamperedKey = structuredClone(json);
    tamperedKey.device.noiseKey.public = Buffer.alloc(32, 1).toString('base64');
    const cases: [string, Uint8Array][] = [
      ['not UTF-8', new Uint8Array([0xff, 0xfe, 0x00])],
      ['not JSON', new TextEncoder().encode('{"format":')],
      ['another format', encode({ creds: {}, keys: {} })],
      ['a newer version', encode({ ...json, version: SANDBOX_AUTH_VERSION + 1 })],
      ['a missing field', encode({ ...json, account: undefined })],
      ['keys that do not belong together', encode(tamperedKey)],
    ];
    for (const [name, state] of cases) {
      const engine = s.engine();
      const resumed = s.open(engine, 's1', state);
      expect(await rejectionCode(resumed.session.start()), name).toBe('INVALID_AUTH_STATE');
      expect(resumed.events, name).toEqual([]);
      expect(resumed.session.state, name).toBe('ended');
      expect(engine.openSessionCount, name).toBe(0);
    }
  });

  it('replaces the older connection when the same credentials come online on a second engine of one network', async () => {
    const s = sandbox();
    const network = new SandboxNetwork();
    const first = await linked(s, s.engine({ network }));
    const resumed = s.open(s.engine({ network }), 's1', checkpointOf(first.events));
    await resumed.session.start();

    expect(first.events.at(-1)).toEqual({
      kind: 'ended',
      reason: 'CONNECTION_REPLACED',
      detail: 'another client connected with the same credentials',
    });
    expect(resumed.kinds()).toEqual(['connected']);
    expect(network.onlineCount).toBe(1);
  });
});

describe('sandbox engine: messages', () => {
  it('sends with a WhatsApp-style id, then reports SENT, DELIVERED and READ on the default delays', async () => {
    const s = sandbox();
    const { session, events } = await linked(s, s.engine());
    const sentAt = s.time.now().getTime();
    const { messageId } = await session.sendText('+15550001111', 'hello');

    expect(messageId).toMatch(/^3EB0[0-9A-F]{16}$/);
    s.time.advance(5_000);
    const statuses = events.flatMap((event) => (event.kind === 'messageStatus' ? [event] : []));
    expect(statuses).toEqual([
      { kind: 'messageStatus', messageId, status: 'SENT', at: new Date(sentAt + defaultReceiptDelays.sentMs) },
      {
        kind: 'messageStatus',
        messageId,
        status: 'DELIVERED',
        at: new Date(sentAt + defaultReceiptDelays.deliveredMs),
      },
      { kind: 'messageStatus', messageId, status: 'READ', at: new Date(sentAt + defaultReceiptDelays.readMs) },
    ]);
    expect(defaultReceiptDelays).toEqual({ sentMs: 100, deliveredMs: 300, readMs: 1_000 });
    expect(s.time.pendingTimers).toBe(0);
  });

  it('reports receipts in order on the next turn when the delays are 0 (benchmarks)', async () => {
    const s = sandbox({ receipts: { sentMs: 0, deliveredMs: 0, readMs: 0 } });
    const { session, events } = await linked(s, s.engine());
    const sent = await Promise.all([session.sendText('15550001111', 'a'), session.sendText('15550002222', 'b')]);
    s.time.advance(0);
    const statuses = events.flatMap((event) =>
      event.kind === 'messageStatus' ? [[event.messageId, event.status]] : [],
    );
    for (const { messageId } of sent) {
      expect(statuses.filter(([id]) => id === messageId).map(([, status]) => status)).toEqual([
        'SENT',
        'DELIVERED',
        'READ',
      ]);
    }
    expect(new Set(sent.map((message) => message.messageId)).size).toBe(2);
  });

  it('accepts phone numbers and user JIDs, and refuses anything else with INVALID_RECIPIENT', async () => {
    const s = sandbox();
    const { session } = await linked(s, s.engine());
    for (const to of ['15550001111', '+15550001111', '15550001111@s.whatsapp.net']) {
      expect(await rejectionCode(session.sendText(to, 'hi')), to).toBe('no error');
    }
    for (const to of [
      '',
      'alice',
      '12345',
      '015550001111',
      '1555000111122223',
      '+1 555 000 1111',
      '120363025246125486@g.us',
      '15550001111@lid',
      '15550001111:2@s.whatsapp.net',
    ]) {
      expect(await rejectionCode(session.sendText(to, 'hi')), to).toBe('INVALID_RECIPIENT');
    }
    expect(await rejectionCode(session.sendText('15550001111', ''))).toBe('INVALID_MESSAGE');
  });

  it('refuses to send unless connected (NOT_CONNECTED): before start, while pairing, after stop', async () => {
    const s = sandbox();
    const { session } = s.open(s.engine());
    expect(await rejectionCode(session.sendText('15550001111', 'hi'))).toBe('NOT_CONNECTED');
    await session.start();
    expect(await rejectionCode(session.sendText('15550001111', 'hi'))).toBe('NOT_CONNECTED');
    await session.stop();
    expect(await rejectionCode(session.sendText('15550001111', 'hi'))).toBe('NOT_CONNECTED');
  });

  it('emits an injected inbound message, from the sender’s JID', async () => {
    const s = sandbox();
    const { session, events } = await linked(s, s.engine());
    s.time.advance(1_234);
    const message = session.controls.injectInbound('+15559990000', 'hi there');

    expect(message).toEqual({
      messageId: expect.stringMatching(/^3A[0-9A-F]{18}$/),
      from: '15559990000@s.whatsapp.net',
      text: 'hi there',
      at: s.at(1_234),
    });
    expect(events.at(-1)).toEqual({ kind: 'inbound', message });
    expect(errorCode(() => session.controls.injectInbound('nobody', 'hi'))).toBe('INVALID_PHONE_NUMBER');
  });

  it('delivers a message to a number linked on the same network, with the same id', async () => {
    const s = sandbox();
    const engine = s.engine();
    const alice = await linked(s, engine, 'alice', { phoneNumber: '15550000001', pushName: 'Alice' });
    const bob = await linked(s, engine, 'bob', { phoneNumber: '15550000002', pushName: 'Bob' });
    const { messageId } = await alice.session.sendText('15550000002', 'hi Bob');
    s.time.advance(defaultReceiptDelays.deliveredMs);

    expect(bob.events.at(-1)).toEqual({
      kind: 'inbound',
      message: {
        messageId,
        from: '15550000001@s.whatsapp.net',
        text: 'hi Bob',
        at: s.at(defaultReceiptDelays.deliveredMs),
      },
    });
  });
});

describe('sandbox engine: how sessions end', () => {
  it('ends with LOGGED_OUT when the phone unlinks the device, and refuses its credentials afterwards', async () => {
    const s = sandbox();
    const engine = s.engine();
    const { session, events } = await linked(s, engine);
    await session.sendText('15550001111', 'in flight');
    session.controls.unlinkFromPhone();

    expect(events.at(-1)).toEqual({ kind: 'ended', reason: 'LOGGED_OUT', detail: 'the phone unlinked this device' });
    expect(s.time.pendingTimers).toBe(0);

    const resumed = s.open(engine, 's1', checkpointOf(events));
    await resumed.session.start();
    expect(resumed.events).toEqual([
      {
        kind: 'ended',
        reason: 'LOGGED_OUT',
        detail: 'this device was unlinked (by the phone or a logout); pair again',
      },
    ]);
  });

  it('refuses the credentials of a device the phone unlinked while it was offline', async () => {
    const s = sandbox();
    const engine = s.engine();
    const { session, events } = await linked(s, engine);
    await session.stop();
    session.controls.unlinkFromPhone();
    expect(events.filter((event) => event.kind === 'ended')).toHaveLength(1);

    const resumed = s.open(engine, 's1', checkpointOf(events));
    await resumed.session.start();
    expect(resumed.events).toEqual([expect.objectContaining({ kind: 'ended', reason: 'LOGGED_OUT' })]);
  });

  it('logout() before start() unlinks the device of the auth state it was given', async () => {
    const s = sandbox();
    const engine = s.engine();
    const first = await linked(s, engine);
    await first.session.stop();
    const idle = s.open(engine, 's1', checkpointOf(first.events));
    await idle.session.logout();
    expect(idle.events).toEqual([expect.objectContaining({ kind: 'ended', reason: 'LOGGED_OUT' })]);

    const resumed = s.open(engine, 's1', checkpointOf(first.events));
    await resumed.session.start();
    expect(resumed.events).toEqual([expect.objectContaining({ kind: 'ended', reason: 'LOGGED_OUT' })]);
  });

  it('ends with CONNECTION_REPLACED when the credentials are used elsewhere', async () => {
    const s = sandbox();
    const { session, events } = await linked(s, s.engine());
    session.controls.connectElsewhere();
    expect(events.at(-1)).toMatchObject({ kind: 'ended', reason: 'CONNECTION_REPLACED' });
    expect(errorCode(() => session.controls.connectElsewhere())).toBe('INVALID_STATE');
  });

  it('ends with CONNECTION_LOST when the connection drops', async () => {
    const s = sandbox();
    const { session, events } = await linked(s, s.engine());
    session.controls.dropConnection();
    expect(events.at(-1)).toMatchObject({ kind: 'ended', reason: 'CONNECTION_LOST' });
  });

  it('stop() ends with STOPPED, clears every timer and emits nothing afterwards', async () => {
    const s = sandbox();
    const engine = s.engine();
    const { session, events } = await linked(s, engine);
    await session.sendText('15550001111', 'in flight');
    expect(s.time.pendingTimers).toBe(1);

    await session.stop();
    await session.stop();
    expect(events.filter((event) => event.kind === 'ended')).toEqual([
      { kind: 'ended', reason: 'STOPPED', detail: 'stop() was called; the auth state is kept' },
    ]);
    expect(s.time.pendingTimers).toBe(0);
    const count = events.length;
    s.time.advance(600_000);
    expect(events).toHaveLength(count);
    expect(engine.network.onlineCount).toBe(0);
    expect(errorCode(() => engine.controls('s1'))).toBe('UNKNOWN_SESSION');
  });

  it('stop() while pairing cancels the QR rotation', async () => {
    const s = sandbox();
    const { session, kinds } = s.open(s.engine());
    await session.start();
    await session.stop();
    expect(s.time.pendingTimers).toBe(0);
    s.time.advance(600_000);
    expect(kinds()).toEqual(['qr', 'ended']);
  });

  it('logout() ends with LOGGED_OUT, clears every timer, and the checkpoint no longer resumes', async () => {
    const s = sandbox();
    const engine = s.engine();
    const { session, events } = await linked(s, engine);
    await session.sendText('15550001111', 'in flight');
    await session.logout();

    expect(events.at(-1)).toMatchObject({ kind: 'ended', reason: 'LOGGED_OUT' });
    expect(s.time.pendingTimers).toBe(0);
    s.time.advance(600_000);
    expect(events.at(-1)).toMatchObject({ kind: 'ended', reason: 'LOGGED_OUT' });

    const resumed = s.open(engine, 's1', checkpointOf(events));
    await resumed.session.start();
    expect(resumed.kinds()).toEqual(['ended']);
    expect(resumed.events[0]).toMatchObject({ reason: 'LOGGED_OUT' });
  });

  it('emits nothing after a listener stops the session from inside an event', async () => {
    const s = sandbox();
    const engine = s.engine();
    const events: EngineEvent[] = [];
    const session = engine.openSession({
      sessionId: 's1',
      authState: null,
      logger,
      onEvent: (event) => {
        events.push(event);
        if (event.kind === 'authCheckpoint') void session.stop();
      },
    });
    await session.start();
    const qr = events[0];
    if (qr?.kind !== 'qr') throw new Error('expected a QR code first');
    session.controls.scanQr(qr.payload, PHONE);

    expect(events.map((event) => event.kind)).toEqual(['qr', 'authCheckpoint', 'ended']);
    expect(s.time.pendingTimers).toBe(0);
  });

  it('refuses start() twice and a second open of a session that is still open', async () => {
    const s = sandbox();
    const engine = s.engine();
    const { session } = s.open(engine);
    await session.start();
    expect(await rejectionCode(session.start())).toBe('INVALID_STATE');
    expect(errorCode(() => s.open(engine))).toBe('INVALID_STATE');
    expect(engine.controls('s1').state).toBe('pairing');
    await session.stop();
    expect(await rejectionCode(session.start())).toBe('INVALID_STATE');
    expect(s.open(engine).session.state).toBe('idle');
  });
});

describe('sandbox engine: determinism', () => {
  async function script(options: SandboxEngineOptions) {
    const s = sandbox(options);
    const engine = s.engine();
    const { session, events } = s.open(engine);
    await session.start();
    s.time.advance(60_000);
    await session.requestPairingCode('15557654321');
    session.controls.scanQr(lastQr(events).payload, PHONE);
    await session.sendText('15550001111', 'one');
    session.controls.injectInbound('15559990000', 'two');
    s.time.advance(1_000);
    const other = s.open(engine, 's2');
    await other.session.start();
    return { events, other: other.events };
  }

  it('replays the same keys, codes, ids and checkpoint bytes from the same seed', async () => {
    const first = await script({ seed: 'bench-1' });
    const second = await script({ seed: 'bench-1' });
    expect(second).toEqual(first);
    expect(checkpointOf(second.events)).toEqual(checkpointOf(first.events));
  });

  it('gives every session, and every seed, its own values', async () => {
    const seeded = await script({ seed: 'bench-1' });
    expect(lastQr(seeded.other).payload).not.toBe(qrEvents(seeded.events)[0]?.payload);
    expect(lastQr(seeded.other).payload.split(',')[1]).not.toBe(lastQr(seeded.events).payload.split(',')[1]);

    const otherSeed = await script({ seed: 'bench-2' });
    expect(lastQr(otherSeed.events).payload).not.toBe(lastQr(seeded.events).payload);
    const unseeded = [await script({}), await script({})];
    expect(lastQr(unseeded[0]!.events).payload).not.toBe(lastQr(unseeded[1]!.events).payload);
  });

  it('draws fresh values when the same session id is opened again on the engine', async () => {
    const s = sandbox({ seed: 'bench-1' });
    const engine = s.engine();
    const first = s.open(engine);
    await first.session.start();
    await first.session.stop();
    const second = s.open(engine);
    await second.session.start();
    expect(lastQr(second.events).payload).not.toBe(lastQr(first.events).payload);
  });
});

describe('sandbox engine options', () => {
  it("defaults to WhatsApp's QR schedule and short receipts", () => {
    const compiled = compileSandboxOptions();
    expect(compiled.qr).toEqual({ firstTtlMs: 60_000, nextTtlMs: 20_000, maxCodes: 6 });
    expect(compiled.qr).toEqual(defaultQrSchedule);
    expect(compiled.receipts).toEqual(defaultReceiptDelays);
    expect(compiled.seed).toBeUndefined();
  });

  it('refuses schedules that cannot work', () => {
    expect(() => compileSandboxOptions({ qr: { maxCodes: 0 } })).toThrow(/qr.maxCodes/);
    expect(() => compileSandboxOptions({ qr: { firstTtlMs: -1 } })).toThrow(/qr.firstTtlMs/);
    expect(() => compileSandboxOptions({ receipts: { sentMs: 500, deliveredMs: 100 } })).toThrow(/out of order/);
    expect(() => compileSandboxOptions({ receipts: { readMs: 1.5 } })).toThrow(/receipts.readMs/);
    expect(() => compileSandboxOptions({ seed: '' })).toThrow(/seed/);
  });
});

describe('manual scheduler', () => {
  it('runs due tasks in due order (ties in scheduling order) with the clock at each due time', () => {
    const time = new ManualScheduler();
    const ran: [string, number][] = [];
    const record = (name: string) => () => ran.push([name, time.monotonicMs()]);
    time.schedule(30, record('c'));
    time.schedule(10, record('a'));
    time.schedule(10, record('b'));
    time.schedule(10, () => time.schedule(5, record('nested')));
    time.schedule(40, record('late')).cancel();

    time.advance(100);
    expect(ran).toEqual([
      ['a', 10],
      ['b', 10],
      ['nested', 15],
      ['c', 30],
    ]);
    expect(time.monotonicMs()).toBe(100);
    expect(time.pendingTimers).toBe(0);
  });
});
