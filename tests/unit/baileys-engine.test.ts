import { EventEmitter, once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import {
  addTransactionCapability,
  Curve,
  DEFAULT_CONNECTION_CONFIG,
  DisconnectReason,
  generateSignalPubKey,
  initAuthCreds,
  makeCacheableSignalKeyStore,
  makeWASocket,
  proto,
  type AuthenticationCreds,
  type BaileysEventMap,
  type ConnectionState,
  type SignalDataSet,
  type UserFacingSocketConfig,
  type WAMessage,
} from '@whiskeysockets/baileys';
import { describe, expect, it, vi } from 'vitest';
import {
  AuthSnapshotError,
  createAuthState,
  decodeAuthSnapshot,
  encodeAuthSnapshot,
} from '../../agent/engines/baileys-auth-state.js';
import {
  createBaileysEngine,
  FIRST_QR_TTL_MS,
  linkedIdentity,
  mapDisconnect,
  mapMessageStatus,
  MAX_CONSECUTIVE_RESTARTS,
  NEXT_QR_TTL_MS,
  toInboundMessage,
  type BaileysSocket,
  describeDisconnect,
  baileysMessageId,
} from '../../agent/engines/baileys.engine.js';
import type { EngineEvent, EngineStopReason } from '../../agent/engines/engine.js';
import { ManualScheduler } from '../../lib/timers.js';
import { createLogger } from '../../lib/logger.js';

const logger = createLogger({ level: 'silent', pretty: false });
const ME = '15551234567:7@s.whatsapp.net';

/** Creds as they are after pairing: a device identity signed by the account. */
function linkedCreds(): AuthenticationCreds {
  const creds = initAuthCreds();
  creds.me = { id: ME, name: 'Ada', lid: '99887766:7@lid' };
  creds.account = proto.ADVSignedDeviceIdentity.fromObject({
    details: Buffer.from('device details'),
    accountSignatureKey: Buffer.alloc(32, 7),
    accountSignature: Buffer.alloc(64, 8),
    deviceSignature: Buffer.alloc(64, 9),
  });
  creds.signalIdentities = [
    { identifier: { name: ME, deviceId: 0 }, identifierKey: generateSignalPubKey(Curve.generateKeyPair().public) },
  ];
  creds.platform = 'android';
  creds.routingInfo = Buffer.from([1, 2, 3, 250]);
  creds.myAppStateKeyId = 'AAAAAGdf';
  return creds;
}

/** One entry of every key type Baileys stores, in the shapes Baileys writes them. */
function keysOfEveryType(): SignalDataSet {
  return {
    'pre-key': { '1': Curve.generateKeyPair(), '2': Curve.generateKeyPair() },
    session: { '15550001111.0': new Uint8Array([1, 2, 3, 4, 5]) },
    'sender-key': { '120363@g.us::15550001111::0': Buffer.from('sender key record') },
    'sender-key-memory': { '120363@g.us': { '15550001111:0@s.whatsapp.net': true } },
    'app-state-sync-key': {
      AAAAAGdf: proto.Message.AppStateSyncKeyData.fromObject({
        keyData: Buffer.alloc(32, 3),
        fingerprint: { rawId: 17, currentIndex: 2, deviceIndexes: [0, 4] },
        timestamp: 1_764_000_000,
      }),
    },
    'app-state-sync-version': {
      regular_high: {
        version: 12,
        hash: Buffer.alloc(128, 5),
        indexValueMap: { 'aW5kZXg=': { valueMac: Buffer.alloc(32, 6) } },
      },
    },
    'lid-mapping': { '15550001111': '99001122', '99001122_reverse': '15550001111' },
    'device-list': { '15550001111': ['0', '3'] },
    tctoken: { '15550001111@s.whatsapp.net': { token: Buffer.from('tc'), timestamp: '1764000000' } },
    'identity-key': { '15550001111.0': new Uint8Array(33).fill(5) },
  };
}

/**
 * BufferJSON writes Buffers and plain Uint8Arrays alike and reads both back
 * as Buffers (a Uint8Array subclass Baileys accepts everywhere); the
 * original is converted the same way, in place, so the comparison is exact
 * about everything else (including protobuf classes).
 */
function uint8ArraysAsBuffers<T>(value: T): T {
  if (typeof value !== 'object' || value === null) return value;
  for (const [key, child] of Object.entries(value)) {
    if (child instanceof Uint8Array && !Buffer.isBuffer(child)) {
      (value as Record<string, unknown>)[key] = Buffer.from(child);
    } else {
      uint8ArraysAsBuffers(child);
    }
  }
  return value;
}

function linkedSnapshot(creds = linkedCreds(), keys: SignalDataSet = {}): Uint8Array {
  return encodeAuthSnapshot({ creds, keys });
}

describe('Baileys auth state snapshots', () => {
  it('restores creds and every key type deep-equal to the original', () => {
    const creds = linkedCreds();
    const keys = keysOfEveryType();

    const restored = decodeAuthSnapshot(encodeAuthSnapshot({ creds, keys }));

    expect(restored.creds).toEqual(uint8ArraysAsBuffers(creds));
    expect(restored.keys).toEqual(uint8ArraysAsBuffers(keys));
    expect(restored.keys['app-state-sync-key']?.AAAAAGdf).toBeInstanceOf(proto.Message.AppStateSyncKeyData);
    expect(restored.creds.account).toBeInstanceOf(proto.ADVSignedDeviceIdentity);
    expect(Buffer.isBuffer(restored.keys.session?.['15550001111.0'])).toBe(true);
  });

  it('encodes a restored state to the same bytes (nothing lost or reshaped on the way)', () => {
    const first = encodeAuthSnapshot({ creds: linkedCreds(), keys: keysOfEveryType() });
    expect(Buffer.from(encodeAuthSnapshot(decodeAuthSnapshot(first)))).toEqual(Buffer.from(first));
  });

  it('serves restored keys through the store Baileys wraps (cache and transactions)', async () => {
    const original = createAuthState(null, () => {});
    const stored = keysOfEveryType();
    await original.state.keys.set(stored);
    const changes = vi.fn();
    const restored = createAuthState(original.snapshot(), changes);
    const keys = addTransactionCapability(makeCacheableSignalKeyStore(restored.state.keys, logger), logger, {
      maxCommitRetries: 1,
      delayBetweenTriesMs: 1,
    });

    const { AAAAAGdf: syncKey } = await keys.get('app-state-sync-key', ['AAAAAGdf']);
    expect(syncKey?.keyData).toEqual(Buffer.alloc(32, 3));
    expect(await keys.get('pre-key', ['1', '404'])).toEqual({ '1': stored['pre-key']?.['1'] });

    await keys.transaction(async () => {
      // Baileys only deletes a pre-key its transaction has read (as libsignal does on first use).
      await keys.get('pre-key', ['1']);
      await keys.set({ 'pre-key': { '1': null }, 'lid-mapping': { '15550002222': '99002222' } });
    }, 'test');
    expect(await restored.state.keys.get('pre-key', ['1'])).toEqual({});
    expect(await restored.state.keys.get('lid-mapping', ['15550002222'])).toEqual({ '15550002222': '99002222' });
    expect(changes).toHaveBeenCalled();
  });

  it("keeps Baileys' signal sessions working across a checkpoint", async () => {
    const alice = createAuthState(null, () => {});
    const bob = createAuthState(null, () => {});
    const bobPreKey = Curve.generateKeyPair();
    await bob.state.keys.set({ 'pre-key': { '1': bobPreKey } });
    const repository = (state: typeof alice) =>
      DEFAULT_CONNECTION_CONFIG.makeSignalRepository(
        {
          creds: state.state.creds,
          keys: addTransactionCapability(state.state.keys, logger, { maxCommitRetries: 1, delayBetweenTriesMs: 1 }),
        },
        logger,
      );
    const aliceJid = '15550001111@s.whatsapp.net';
    const bobJid = '15550002222@s.whatsapp.net';
    await repository(alice).injectE2ESession({
      jid: bobJid,
      session: {
        registrationId: bob.state.creds.registrationId,
        identityKey: generateSignalPubKey(bob.state.creds.signedIdentityKey.public),
        signedPreKey: {
          keyId: bob.state.creds.signedPreKey.keyId,
          publicKey: generateSignalPubKey(bob.state.creds.signedPreKey.keyPair.public),
          signature: bob.state.creds.signedPreKey.signature,
        },
        preKey: { keyId: 1, publicKey: generateSignalPubKey(bobPreKey.public) },
      },
    });

    // Both sides come back from checkpoints before they use the session.
    const aliceAgain = createAuthState(alice.snapshot(), () => {});
    const bobAgain = createAuthState(bob.snapshot(), () => {});
    const first = await repository(aliceAgain).encryptMessage({ jid: bobJid, data: Buffer.from('hello') });
    const plain = await repository(bobAgain).decryptMessage({ jid: aliceJid, ...first });

    expect(first.type).toBe('pkmsg');
    expect(Buffer.from(plain).toString()).toBe('hello');
  });

  it('refuses snapshots it cannot read', () => {
    const creds = initAuthCreds();
    expect(() => decodeAuthSnapshot(new TextEncoder().encode('not json'))).toThrow(AuthSnapshotError);
    expect(() => decodeAuthSnapshot(new TextEncoder().encode(JSON.stringify({ creds, keys: {} })))).toThrow(
      /not a Baileys auth snapshot/,
    );
    const future = new TextEncoder().encode(
      JSON.stringify({ format: 'switchboard.baileys-auth', version: 2, creds, keys: {} }),
    );
    expect(() => decodeAuthSnapshot(future)).toThrow(/version 2 is not supported/);
  });
});

describe('disconnect mapping', () => {
  const unlinked = { linked: false, qrWindowOver: false };
  const table: Record<keyof typeof DisconnectReason, ReturnType<typeof mapDisconnect>> = {
    loggedOut: { action: 'end', reason: 'LOGGED_OUT' },
    connectionReplaced: { action: 'end', reason: 'CONNECTION_REPLACED' },
    restartRequired: { action: 'reconnect' },
    timedOut: { action: 'end', reason: 'CONNECTION_LOST' },
    connectionLost: { action: 'end', reason: 'CONNECTION_LOST' },
    connectionClosed: { action: 'end', reason: 'CONNECTION_LOST' },
    badSession: { action: 'end', reason: 'CONNECTION_LOST' },
    multideviceMismatch: { action: 'end', reason: 'CONNECTION_LOST' },
    forbidden: { action: 'end', reason: 'CONNECTION_LOST' },
    unavailableService: { action: 'end', reason: 'CONNECTION_LOST' },
  };

  it.each(Object.entries(table))('maps %s', (name, expected) => {
    const code = DisconnectReason[name as keyof typeof DisconnectReason];
    expect(mapDisconnect(code, { linked: true, qrWindowOver: false })).toEqual(expected);
    expect(mapDisconnect(code, unlinked)).toEqual(expected);
  });

  it('has a decision for every reason this Baileys release knows', () => {
    const names = Object.keys(DisconnectReason).filter((key) => Number.isNaN(Number(key)));
    expect(names.sort()).toEqual(Object.keys(table).sort());
  });

  it('reads 408 as the pairing window running out only for an unlinked device whose last QR expired', () => {
    expect(mapDisconnect(408, { linked: false, qrWindowOver: true })).toEqual({ action: 'end', reason: 'QR_TIMEOUT' });
    expect(mapDisconnect(408, { linked: true, qrWindowOver: true })).toEqual({
      action: 'end',
      reason: 'CONNECTION_LOST',
    });
    expect(mapDisconnect(408, unlinked)).toEqual({ action: 'end', reason: 'CONNECTION_LOST' });
  });

  it('calls a close without a status code, or an unknown one, a lost connection', () => {
    expect(mapDisconnect(undefined, unlinked)).toEqual({ action: 'end', reason: 'CONNECTION_LOST' });
    expect(mapDisconnect(599, unlinked)).toEqual({ action: 'end', reason: 'CONNECTION_LOST' });
  });

  it('says plainly when the worker cannot reach WhatsApp at all, and names the close reason otherwise', () => {
    expect(describeDisconnect(408, new Error('WebSocket Error (getaddrinfo ENOTFOUND web.whatsapp.com)'))).toBe(
      'this worker cannot reach WhatsApp (ENOTFOUND: WebSocket Error (getaddrinfo ENOTFOUND web.whatsapp.com)); check its network, DNS or proxy',
    );
    expect(describeDisconnect(428, new Error('Connection Closed'))).toBe('connectionClosed (428): Connection Closed');
  });
});

describe('message status mapping', () => {
  const Status = proto.WebMessageInfo.Status;

  it.each([
    [Status.ERROR, 'FAILED'],
    [Status.PENDING, null],
    [Status.SERVER_ACK, 'SENT'],
    [Status.DELIVERY_ACK, 'DELIVERED'],
    [Status.READ, 'READ'],
    [Status.PLAYED, 'READ'],
  ] as const)('maps status %i to %s', (status, expected) => {
    expect(mapMessageStatus(status)).toBe(expected);
  });
});

describe('inbound messages and identity', () => {
  const at = new Date('2026-01-01T00:00:00Z');
  const message = (overrides: Partial<WAMessage>): WAMessage => ({
    key: { remoteJid: '15550001111@s.whatsapp.net', fromMe: false, id: 'ABC' },
    message: { conversation: 'hi' },
    messageTimestamp: 1_767_225_600,
    ...overrides,
  });

  it('takes the text and the server timestamp', () => {
    expect(toInboundMessage(message({}), at)).toEqual({
      messageId: 'ABC',
      from: '15550001111@s.whatsapp.net',
      text: 'hi',
      at: new Date(1_767_225_600_000),
    });
  });

  it('unwraps extended text and disappearing messages', () => {
    const wrapped = message({ message: { ephemeralMessage: { message: { extendedTextMessage: { text: 'link' } } } } });
    expect(toInboundMessage(wrapped, at)?.text).toBe('link');
  });

  it('answers a LID-addressed chat at its phone number jid when Baileys knows it', () => {
    const lid = message({ key: { remoteJid: '99001122@lid', remoteJidAlt: '15550001111@s.whatsapp.net', id: 'L1' } });
    expect(toInboundMessage(lid, at)?.from).toBe('15550001111@s.whatsapp.net');
  });

  it('skips our own messages, status broadcasts and messages without text', () => {
    expect(toInboundMessage(message({ key: { remoteJid: 'x@s.whatsapp.net', fromMe: true, id: '1' } }), at)).toBeNull();
    expect(toInboundMessage(message({ key: { remoteJid: 'status@broadcast', id: '2' } }), at)).toBeNull();
    expect(toInboundMessage(message({ message: { reactionMessage: { text: '+1' } } }), at)).toBeNull();
  });

  it('describes the linked account without the device suffix', () => {
    expect(linkedIdentity({ id: ME, name: 'Ada' })).toEqual({
      jid: '15551234567@s.whatsapp.net',
      phoneNumber: '+15551234567',
      pushName: 'Ada',
    });
  });
});

/** Stands in for makeWASocket's socket: an event emitter that applies creds updates like Baileys does. */
class FakeSocket implements BaileysSocket {
  private readonly emitter = new EventEmitter();
  readonly ended: (Error | undefined)[] = [];
  readonly sent: { jid: string; text: string }[] = [];
  loggedOut = false;
  logoutFails = false;
  pairingRequests: string[] = [];

  readonly ev = {
    on: <T extends keyof BaileysEventMap>(event: T, listener: (arg: BaileysEventMap[T]) => void): void => {
      this.emitter.on(event, listener);
    },
  };

  constructor(readonly config: UserFacingSocketConfig) {
    // Baileys registers this listener while building the socket, before any caller's.
    this.ev.on('creds.update', (update) => Object.assign(config.auth.creds, update));
  }

  emit<T extends keyof BaileysEventMap>(event: T, arg: BaileysEventMap[T]): void {
    this.emitter.emit(event, arg);
  }

  update(update: Partial<ConnectionState>): void {
    this.emit('connection.update', update);
  }

  /** The socket closes by itself with a Boom-like error, as Baileys reports it. */
  close(statusCode: number | undefined, message = 'closed'): void {
    const error = statusCode === undefined ? undefined : Object.assign(new Error(message), { output: { statusCode } });
    this.update({ connection: 'close', lastDisconnect: { error, date: new Date() } });
  }

  async end(error: Error | undefined): Promise<void> {
    this.ended.push(error);
    await Promise.resolve();
    this.update({ connection: 'close', lastDisconnect: { error, date: new Date() } });
  }

  async logout(): Promise<void> {
    if (this.logoutFails) throw new Error('Connection Closed');
    this.loggedOut = true;
    this.close(DisconnectReason.loggedOut, 'Intentional Logout');
  }

  async requestPairingCode(phoneNumber: string): Promise<string> {
    this.pairingRequests.push(phoneNumber);
    return 'ABCD1234';
  }

  /** The message ids the engine asked for, in send order (undefined: Baileys picks one). */
  readonly requestedIds: (string | undefined)[] = [];

  async sendMessage(jid: string, content: { text: string }, options?: { messageId?: string }): Promise<WAMessage> {
    this.sent.push({ jid, text: content.text });
    this.requestedIds.push(options?.messageId);
    // As Baileys does: the id given in the options is the message's id.
    return { key: { remoteJid: jid, fromMe: true, id: options?.messageId ?? `MSG${this.sent.length}` } };
  }
}

describe('Baileys engine on a fake socket', () => {
  function harness(authState: Uint8Array | null = null) {
    // One fake clock and scheduler: the checkpoint timer runs only when the test advances it.
    const clock = new ManualScheduler();
    const sockets: FakeSocket[] = [];
    const events: EngineEvent[] = [];
    const engine = createBaileysEngine({
      clock,
      scheduler: clock,
      socketFactory: (config) => {
        const socket = new FakeSocket(config);
        sockets.push(socket);
        return socket;
      },
    });
    const session = engine.openSession({ sessionId: 'session-1', authState, onEvent: (e) => events.push(e), logger });
    return {
      session,
      sockets,
      events,
      clock,
      socket: (): FakeSocket => sockets.at(-1)!,
      of: <K extends EngineEvent['kind']>(kind: K) =>
        events.filter((e): e is Extract<EngineEvent, { kind: K }> => e.kind === kind),
      /** Moves wall time, monotonic time and timers together. */
      advance: (ms: number) => clock.advance(ms),
      endedWith: (): EngineStopReason[] => events.flatMap((e) => (e.kind === 'ended' ? [e.reason] : [])),
    };
  }

  it('shows QR codes with the expiry WhatsApp gives them: 60 s for the first, 20 s after', async () => {
    const h = harness();
    await h.session.start();
    const t0 = h.clock.now().getTime();

    h.socket().update({ connection: 'connecting', qr: undefined });
    h.socket().update({ qr: '2@first' });
    h.advance(FIRST_QR_TTL_MS);
    h.socket().update({ qr: '2@second' });

    expect(h.of('qr')).toEqual([
      { kind: 'qr', payload: '2@first', expiresAt: new Date(t0 + FIRST_QR_TTL_MS), sequence: 1 },
      { kind: 'qr', payload: '2@second', expiresAt: new Date(t0 + FIRST_QR_TTL_MS + NEXT_QR_TTL_MS), sequence: 2 },
    ]);
  });

  it('ends with QR_TIMEOUT when Baileys runs out of QR codes', async () => {
    const h = harness();
    await h.session.start();
    h.socket().update({ qr: '2@first' });
    h.advance(FIRST_QR_TTL_MS);
    h.socket().update({ qr: '2@last' });
    h.advance(NEXT_QR_TTL_MS);

    h.socket().close(DisconnectReason.timedOut, 'QR refs attempts ended');

    expect(h.endedWith()).toEqual(['QR_TIMEOUT']);
    expect(h.of('authCheckpoint')).toEqual([]);
  });

  it('calls a 408 while a QR code is still valid a lost connection, not a QR timeout', async () => {
    const h = harness();
    await h.session.start();
    h.socket().update({ qr: '2@first' });
    h.advance(10_000);

    h.socket().close(DisconnectReason.connectionLost, 'Connection was lost');

    expect(h.endedWith()).toEqual(['CONNECTION_LOST']);
  });

  it('reports the linked identity when the connection opens', async () => {
    const h = harness(linkedSnapshot());
    await h.session.start();

    h.socket().update({ connection: 'open' });

    expect(h.of('connected')).toEqual([
      {
        kind: 'connected',
        identity: { jid: '15551234567@s.whatsapp.net', phoneNumber: '+15551234567', pushName: 'Ada' },
      },
    ]);
  });

  it('coalesces a burst of creds updates into one checkpoint after 250 ms of quiet', async () => {
    const h = harness(linkedSnapshot());
    await h.session.start();
    h.socket().update({ connection: 'open' });

    h.socket().emit('creds.update', { nextPreKeyId: 31 });
    h.advance(100);
    h.socket().emit('creds.update', { firstUnuploadedPreKeyId: 31 });
    h.advance(249);
    expect(h.of('authCheckpoint')).toEqual([]);
    h.advance(1);

    const checkpoints = h.of('authCheckpoint');
    expect(checkpoints).toHaveLength(1);
    const { creds } = decodeAuthSnapshot(checkpoints[0]!.state);
    expect(creds).toMatchObject({ nextPreKeyId: 31, firstUnuploadedPreKeyId: 31, me: { id: ME } });
  });

  it('still checkpoints every 2 s while keys keep changing', async () => {
    const h = harness(linkedSnapshot());
    await h.session.start();

    for (let i = 0; i < 12; i++) {
      await h.socket().config.auth.keys.set({ 'pre-key': { [String(i)]: Curve.generateKeyPair() } });
      h.advance(200);
    }

    expect(h.of('authCheckpoint')).toHaveLength(1);
    const { keys } = decodeAuthSnapshot(h.of('authCheckpoint')[0]!.state);
    expect(Object.keys(keys['pre-key'] ?? {})).toHaveLength(10);
  });

  it('checkpoints nothing until pairing finishes, then the linked state', async () => {
    const h = harness();
    await h.session.start();
    h.socket().update({ qr: '2@first' });
    h.socket().emit('creds.update', { me: { id: ME, name: '~' } });
    h.advance(1_000);
    expect(h.of('authCheckpoint')).toEqual([]);

    // pair-success: Baileys stores the signed device identity, then WhatsApp asks for a restart.
    h.socket().emit('creds.update', { me: { id: ME, name: 'Ada' }, account: linkedCreds().account });
    h.advance(250);

    expect(h.of('authCheckpoint')).toHaveLength(1);
    expect(decodeAuthSnapshot(h.of('authCheckpoint')[0]!.state).creds.account).toBeTruthy();
  });

  it('reconnects on restartRequired (515) with the same auth state and does not end', async () => {
    const h = harness();
    await h.session.start();
    h.socket().update({ qr: '2@first' });
    h.socket().emit('creds.update', { me: { id: ME, name: 'Ada' }, account: linkedCreds().account });

    h.socket().close(DisconnectReason.restartRequired, 'Stream Errored (restart required)');
    h.sockets[0]!.update({ connection: 'open' }); // a late event from the replaced socket counts for nothing
    expect(h.sockets).toHaveLength(2);
    expect(h.of('connected')).toEqual([]);
    h.socket().update({ connection: 'open' });

    expect(h.sockets[1]!.config.auth).toBe(h.sockets[0]!.config.auth);
    expect(h.endedWith()).toEqual([]);
    expect(h.of('connected')).toHaveLength(1);
  });

  it(`gives up after ${MAX_CONSECUTIVE_RESTARTS} restarts in a row without opening`, async () => {
    const h = harness(linkedSnapshot());
    await h.session.start();

    for (let i = 0; i <= MAX_CONSECUTIVE_RESTARTS; i++) h.socket().close(DisconnectReason.restartRequired);

    expect(h.sockets).toHaveLength(MAX_CONSECUTIVE_RESTARTS + 1);
    expect(h.endedWith()).toEqual(['CONNECTION_LOST']);
  });

  it('ends with CONNECTION_REPLACED on 440, never reconnects, and writes no checkpoint over the new owner', async () => {
    const h = harness(linkedSnapshot());
    await h.session.start();
    h.socket().update({ connection: 'open' });
    h.socket().emit('creds.update', { nextPreKeyId: 99 });

    h.socket().close(DisconnectReason.connectionReplaced, 'Stream Errored (conflict)');
    h.advance(60_000);

    expect(h.sockets).toHaveLength(1);
    expect(h.endedWith()).toEqual(['CONNECTION_REPLACED']);
    expect(h.of('authCheckpoint')).toEqual([]);
    expect(h.events.at(-1)?.kind).toBe('ended');
  });

  it('ends with LOGGED_OUT when the phone unlinks the device (401)', async () => {
    const h = harness(linkedSnapshot());
    await h.session.start();
    h.socket().update({ connection: 'open' });

    h.socket().close(DisconnectReason.loggedOut, 'Connection Failure');

    expect(h.endedWith()).toEqual(['LOGGED_OUT']);
    expect(h.sockets).toHaveLength(1);
  });

  it('flushes the pending checkpoint before ending with CONNECTION_LOST', async () => {
    const h = harness(linkedSnapshot());
    await h.session.start();
    h.socket().update({ connection: 'open' });
    h.socket().emit('creds.update', { nextPreKeyId: 42 });

    h.socket().close(DisconnectReason.connectionClosed, 'Connection Terminated');

    expect(h.events.map((e) => e.kind).slice(-2)).toEqual(['authCheckpoint', 'ended']);
    expect(h.endedWith()).toEqual(['CONNECTION_LOST']);
    expect(h.sockets).toHaveLength(1);
  });

  it('forwards notified inbound messages, not our own or history appends', async () => {
    const h = harness(linkedSnapshot());
    await h.session.start();
    h.socket().update({ connection: 'open' });
    const incoming: WAMessage = {
      key: { remoteJid: '15550001111@s.whatsapp.net', fromMe: false, id: 'IN1' },
      message: { conversation: 'hello' },
      messageTimestamp: 1_767_225_600,
    };
    const ours: WAMessage = { ...incoming, key: { ...incoming.key, fromMe: true, id: 'OUT1' } };

    h.socket().emit('messages.upsert', { messages: [incoming, ours], type: 'notify' });
    h.socket().emit('messages.upsert', {
      messages: [{ ...incoming, key: { ...incoming.key, id: 'OLD' } }],
      type: 'append',
    });

    expect(h.of('inbound')).toEqual([
      {
        kind: 'inbound',
        message: {
          messageId: 'IN1',
          from: '15550001111@s.whatsapp.net',
          text: 'hello',
          at: new Date(1_767_225_600_000),
        },
      },
    ]);
  });

  it('reports delivery status of the messages it sent', async () => {
    const h = harness(linkedSnapshot());
    await h.session.start();
    h.socket().update({ connection: 'open' });

    const { messageId } = await h.session.sendText('+1 555 000 1111', 'hi');
    h.socket().emit('messages.update', [
      { key: { id: messageId, fromMe: true }, update: { status: proto.WebMessageInfo.Status.DELIVERY_ACK } },
      { key: { id: 'THEIRS', fromMe: false }, update: { status: proto.WebMessageInfo.Status.READ } },
    ]);

    expect(h.socket().sent).toEqual([{ jid: '15550001111@s.whatsapp.net', text: 'hi' }]);
    expect(h.of('messageStatus')).toEqual([
      { kind: 'messageStatus', messageId, status: 'DELIVERED', at: h.clock.now() },
    ]);
  });

  it('sends a dispatched message under a WhatsApp id derived from ours, the same id every time it is sent', async () => {
    const h = harness(linkedSnapshot());
    await h.session.start();
    h.socket().update({ connection: 'open' });
    const ours = '7d1c2f4e-8a3b-4c5d-9e6f-0a1b2c3d4e5f';

    const first = await h.session.sendText('15550001111', 'hi', ours);
    const again = await h.session.sendText('15550001111', 'hi', ours);
    const other = await h.session.sendText('15550001111', 'hi', '00000000-0000-4000-8000-000000000000');

    expect(first.messageId).toBe(baileysMessageId(ours));
    expect(again.messageId).toBe(first.messageId);
    expect(other.messageId).not.toBe(first.messageId);
    expect(h.socket().requestedIds).toEqual([first.messageId, first.messageId, other.messageId]);
  });

  it('derives WhatsApp ids in the shape Baileys generates (3EB0 and 18 upper-case hex digits), stable and distinct', () => {
    const ids = Array.from({ length: 1_000 }, (_, n) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`);
    const derived = ids.map(baileysMessageId);

    for (const id of derived) expect(id).toMatch(/^3EB0[0-9A-F]{18}$/);
    expect(new Set(derived).size).toBe(ids.length);
    expect(ids.map(baileysMessageId)).toEqual(derived);
    // Pinned: a change here would make a message dispatched again after an upgrade go out twice.
    expect(baileysMessageId('7d1c2f4e-8a3b-4c5d-9e6f-0a1b2c3d4e5f')).toBe('3EB0C2A4ABC336E0710083');
  });

  it('refuses to send before the session is connected', async () => {
    const h = harness();
    await h.session.start();
    await expect(h.session.sendText('15550001111', 'hi')).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
  });

  it('asks for a pairing code once the socket is registering, and reports it', async () => {
    const h = harness();
    await h.session.start();

    const pending = h.session.requestPairingCode('+1 (555) 123-4567');
    await Promise.resolve();
    expect(h.socket().pairingRequests).toEqual([]);
    h.socket().update({ qr: '2@first' });

    await expect(pending).resolves.toBe('ABCD1234');
    expect(h.socket().pairingRequests).toEqual(['15551234567']);
    expect(h.of('pairingCode')).toMatchObject([{ kind: 'pairingCode', code: 'ABCD1234' }]);
  });

  it('stop() ends the socket without logging out, flushes a final checkpoint and ends STOPPED', async () => {
    const h = harness(linkedSnapshot());
    await h.session.start();
    h.socket().update({ connection: 'open' });
    h.socket().emit('creds.update', { nextPreKeyId: 77 });

    await h.session.stop();
    h.advance(1_000);

    expect(h.socket().ended).toEqual([undefined]);
    expect(h.socket().loggedOut).toBe(false);
    expect(h.events.map((e) => e.kind).slice(-2)).toEqual(['authCheckpoint', 'ended']);
    expect(h.endedWith()).toEqual(['STOPPED']);
    expect(decodeAuthSnapshot(h.of('authCheckpoint')[0]!.state).creds.nextPreKeyId).toBe(77);
  });

  it('logout() unlinks the device and ends LOGGED_OUT without checkpointing the dead state', async () => {
    const h = harness(linkedSnapshot());
    await h.session.start();
    h.socket().update({ connection: 'open' });
    h.socket().emit('creds.update', { nextPreKeyId: 77 });

    await h.session.logout();
    h.advance(1_000);

    expect(h.socket().loggedOut).toBe(true);
    expect(h.endedWith()).toEqual(['LOGGED_OUT']);
    expect(h.of('authCheckpoint')).toEqual([]);
  });

  it('a logout that cannot reach WhatsApp rejects and ends CONNECTION_LOST, keeping the auth state', async () => {
    const h = harness(linkedSnapshot());
    await h.session.start();
    h.socket().update({ connection: 'open' });
    h.socket().logoutFails = true;

    await expect(h.session.logout()).rejects.toMatchObject({ code: 'UNAVAILABLE' });

    expect(h.socket().ended).toEqual([undefined]);
    expect(h.endedWith()).toEqual(['CONNECTION_LOST']);
  });

  it('refuses to start from an auth state it cannot read', async () => {
    const h = harness(new TextEncoder().encode('{"format":"something else"}'));
    await expect(h.session.start()).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(h.sockets).toHaveLength(0);
  });
});

describe('Baileys engine on a real socket (loopback only)', () => {
  it('runs makeWASocket through the engine and ends CONNECTION_LOST when the server refuses', async () => {
    // A port that was just free: nothing listens, so the connection is refused at once.
    const server = createServer().listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    server.close();
    const events: EngineEvent[] = [];
    const ended = new Promise<void>((resolve) => {
      const engine = createBaileysEngine({
        socketFactory: (config) => makeWASocket({ ...config, waWebSocketUrl: `ws://127.0.0.1:${port}/ws/chat` }),
      });
      const session = engine.openSession({
        sessionId: 'real',
        authState: null,
        logger,
        onEvent: (event) => {
          events.push(event);
          if (event.kind === 'ended') resolve();
        },
      });
      void session.start();
    });

    await ended;

    // Baileys reports a refused WebSocket as 408, the same code as the QR window running out.
    expect(events).toEqual([
      { kind: 'ended', reason: 'CONNECTION_LOST', detail: expect.stringContaining('ECONNREFUSED') },
    ]);
  });
});
