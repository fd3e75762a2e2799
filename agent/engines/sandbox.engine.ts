import { systemClock, type Clock } from '../../lib/clock.js';
import type { Logger } from '../../lib/logger.js';
import type {
  Engine,
  EngineEvent,
  EngineSession,
  EngineSessionInput,
  EngineStopReason,
  InboundMessage,
  LinkedIdentity,
} from './engine.js';
import { EngineError } from './engine-error.js';
import {
  createDeviceKeys,
  decodeAuthState,
  deviceKeyId,
  encodeAuthState,
  type SandboxAccount,
  type SandboxAuthState,
  type SandboxDeviceKeys,
} from './sandbox-auth-state.js';
import { SandboxNetwork, type NetworkConnection } from './sandbox-network.js';
import { cryptoRandom, sessionRandom, type RandomSource } from './sandbox-random.js';
import { systemScheduler, type Scheduler, type Timer } from '../../lib/timers.js';
import {
  MAX_TEXT_LENGTH,
  normalisePairingCode,
  pairingCodeFromBytes,
  parsePhoneAddress,
  phoneMessageId,
  qrPayload,
  derivedMessageId,
  webMessageId,
  type PhoneAddress,
} from './whatsapp-format.js';

/**
 * How long QR codes live. WhatsApp's server hands a new companion six refs
 * (one QR code each); WhatsApp Web, Baileys and whatsmeow show the first for
 * 60 s and each later one for 20 s, then give up (Baileys: "QR refs attempts
 * ended"), 160 s after the first code.
 */
export interface QrSchedule {
  firstTtlMs: number;
  nextTtlMs: number;
  /** Codes shown before the session ends with QR_TIMEOUT. */
  maxCodes: number;
}

export const defaultQrSchedule: Readonly<QrSchedule> = { firstTtlMs: 60_000, nextTtlMs: 20_000, maxCodes: 6 };

/**
 * When a sent message's receipts arrive, each measured from the send (so
 * sentMs <= deliveredMs <= readMs). Zero for benchmarks: the receipts then
 * come on the scheduler's next turn, still in order.
 */
export interface ReceiptDelays {
  sentMs: number;
  deliveredMs: number;
  readMs: number;
}

export const defaultReceiptDelays: Readonly<ReceiptDelays> = { sentMs: 100, deliveredMs: 300, readMs: 1_000 };

/** How a sandbox engine is built; every field is optional (see compileSandboxOptions for the defaults). */
export interface SandboxEngineOptions {
  /** Default the system clock. Tests pass one ManualScheduler as both clock and scheduler. */
  clock?: Clock;
  /** Default real timers (setTimeout). */
  scheduler?: Scheduler;
  /**
   * Makes keys, QR refs, pairing codes and message ids a deterministic
   * function of the seed, the session id, how often this engine opened it
   * and the auth state it started from. Without a seed they are
   * crypto-random.
   */
  seed?: string;
  /** Share one network between engines to make them workers on the same simulated WhatsApp. */
  network?: SandboxNetwork;
  qr?: Partial<QrSchedule>;
  receipts?: Partial<ReceiptDelays>;
}

/** Options with the defaults applied and checked, once, when the engine is built. */
export interface CompiledSandboxOptions {
  clock: Clock;
  scheduler: Scheduler;
  seed: string | undefined;
  network: SandboxNetwork;
  qr: QrSchedule;
  receipts: ReceiptDelays;
}

export function compileSandboxOptions(options: SandboxEngineOptions = {}): CompiledSandboxOptions {
  const qr: QrSchedule = { ...defaultQrSchedule, ...options.qr };
  const receipts: ReceiptDelays = { ...defaultReceiptDelays, ...options.receipts };
  const problems: string[] = [];
  for (const [name, value] of [
    ['qr.firstTtlMs', qr.firstTtlMs],
    ['qr.nextTtlMs', qr.nextTtlMs],
    ['qr.maxCodes', qr.maxCodes],
  ] as const) {
    if (!Number.isInteger(value) || value < 1) problems.push(`${name} must be a positive integer, got ${value}`);
  }
  for (const [name, value] of Object.entries(receipts)) {
    if (!Number.isInteger(value) || value < 0) problems.push(`receipts.${name} must be an integer >= 0, got ${value}`);
  }
  if (!(receipts.sentMs <= receipts.deliveredMs && receipts.deliveredMs <= receipts.readMs)) {
    problems.push('receipts must not arrive out of order: sentMs <= deliveredMs <= readMs');
  }
  if (options.seed !== undefined && options.seed === '') problems.push('seed must not be empty');
  if (problems.length > 0) throw new RangeError(`Invalid sandbox engine options: ${problems.join('; ')}`);
  return {
    clock: options.clock ?? systemClock,
    scheduler: options.scheduler ?? systemScheduler,
    seed: options.seed,
    network: options.network ?? new SandboxNetwork(),
    qr,
    receipts,
  };
}

/**
 * A sandbox session's lifecycle:
 * - `idle`: opened, start() not called yet.
 * - `pairing`: no auth state; showing QR codes (and a pairing code, if one was requested).
 * - `connected`: linked and online; messages flow.
 * - `ended`: final; the `ended` event was emitted and nothing else will be.
 */
export type SandboxSessionState = 'idle' | 'pairing' | 'connected' | 'ended';

/** A QR code as the session showed it. */
export interface ShownQr {
  payload: string;
  expiresAt: Date;
  sequence: number;
}

/** The simulated phone that scans a QR code or types a pairing code. */
export interface SandboxPhone {
  /** Digits with country code (a leading + is accepted): becomes the account the device is linked to. */
  phoneNumber: string;
  /** The account's profile name; default `Sandbox <phoneNumber>`. */
  pushName?: string;
}

/**
 * What the sandbox lets tests and developers do that WhatsApp leaves to the
 * phone and the server. Calls are synchronous and emit the resulting events
 * before they return; a call that does not fit the session's state throws
 * EngineError (INVALID_STATE unless said otherwise).
 */
export interface SandboxControls {
  readonly state: SandboxSessionState;
  /** The QR code valid right now, or undefined when none is shown. */
  currentQr(): ShownQr | undefined;
  /**
   * The phone scans `payload`: links the device if it is the current, unexpired
   * code; QR_EXPIRED for an earlier code of this session, QR_UNKNOWN for any
   * other string; INVALID_PHONE_NUMBER for a bad number.
   */
  scanQr(payload: string, phone: SandboxPhone): void;
  /**
   * The phone types the code from requestPairingCode() (grouped or not, any
   * case): links the device to the number the code was requested for.
   * PAIRING_CODE_INVALID when it does not match; INVALID_STATE when none was requested.
   */
  enterPairingCode(code: string, phone?: Pick<SandboxPhone, 'pushName'>): void;
  /** Someone messages the linked account: emits `inbound` and returns the message. NOT_CONNECTED unless connected. */
  injectInbound(from: string, text: string): InboundMessage;
  /**
   * The phone removes this device under Linked devices: online, the session
   * ends with LOGGED_OUT; stopped or not yet started, its credentials are
   * refused (LOGGED_OUT) when it next starts on this network.
   */
  unlinkFromPhone(): void;
  /** Another client comes online with these credentials: the session ends with CONNECTION_REPLACED. */
  connectElsewhere(): void;
  /** The link drops (network trouble): the session ends with CONNECTION_LOST, which is retryable. */
  dropConnection(): void;
}

/** One session on the sandbox network; the agent sees an EngineSession, tests also its controls. */
export class SandboxSession implements EngineSession, SandboxControls {
  private _state: SandboxSessionState = 'idle';
  private readonly logger: Logger;
  private readonly timers = new Set<Timer>();
  private device: SandboxDeviceKeys | undefined;
  private account: SandboxAccount | undefined;
  private qr: ShownQr | undefined;
  private qrTimer: Timer | undefined;
  /** Every payload this session showed, so a stale scan is told apart from a wrong one. */
  private readonly shownQrs = new Map<string, ShownQr>();
  private pairingDeadline: Date | undefined;
  private pairingCode: { code: string; phone: PhoneAddress; expiresAt: Date } | undefined;
  private readonly connection: NetworkConnection = {
    replaced: () => this.end('CONNECTION_REPLACED', 'another client connected with the same credentials'),
    receive: (message) => {
      if (this._state === 'connected') this.emit({ kind: 'inbound', message });
    },
  };

  constructor(
    private readonly input: EngineSessionInput,
    private readonly options: CompiledSandboxOptions,
    private readonly random: RandomSource,
    private readonly onEnded: (session: SandboxSession) => void,
  ) {
    this.logger = input.logger.child({ sessionId: input.sessionId, engine: 'sandbox' });
  }

  get sessionId(): string {
    return this.input.sessionId;
  }

  get state(): SandboxSessionState {
    return this._state;
  }

  /** This session's sandbox controls (the session itself, typed narrowly). */
  get controls(): SandboxControls {
    return this;
  }

  async start(): Promise<void> {
    this.require(['idle'], 'start');
    const authState = this.input.authState;
    if (authState === null) {
      this.startPairing();
      return;
    }
    let decoded: SandboxAuthState;
    try {
      decoded = decodeAuthState(authState);
    } catch (error) {
      // Not a network condition, so no `ended` (CONNECTION_LOST would be retried with the same bytes forever).
      this.transition('ended');
      this.onEnded(this);
      throw error;
    }
    this.device = decoded.device;
    this.account = decoded.account;
    const key = deviceKeyId(decoded.device);
    const network = this.options.network;
    if (network.standing(key) === 'unlinked') {
      this.end('LOGGED_OUT', 'this device was unlinked (by the phone or a logout); pair again');
      return;
    }
    network.adoptDevice(key, decoded.account.phoneNumber, deviceIndex(decoded.account.deviceJid));
    this.goOnline();
    this.emit({ kind: 'connected', identity: this.identity() });
  }

  async stop(): Promise<void> {
    this.end('STOPPED', 'stop() was called; the auth state is kept');
  }

  async logout(): Promise<void> {
    let key: string | undefined;
    try {
      key = this.linkedDeviceKey();
    } catch {
      // An unreadable auth state links nothing: there is nothing to unlink.
    }
    if (key !== undefined) this.options.network.unlinkDevice(key);
    this.end('LOGGED_OUT', 'logout() was called; the device was unlinked');
  }

  async sendText(to: string, text: string, ourMessageId?: string): Promise<{ messageId: string }> {
    if (this._state !== 'connected') {
      throw new EngineError('NOT_CONNECTED', `cannot send: the session is ${this._state}, not connected`);
    }
    const recipient = parsePhoneAddress(to);
    if (typeof recipient === 'string') {
      throw new EngineError('INVALID_RECIPIENT', `cannot send to ${JSON.stringify(to)}: ${recipient}`);
    }
    checkText(text);
    const sendLog = this.options.network.sendLog;
    if (ourMessageId !== undefined) {
      const earlier = sendLog.lookup(ourMessageId);
      if (earlier !== undefined) {
        // Already on the network (sent before a crash, maybe by another worker): WhatsApp drops a
        // repeated id, so nothing is delivered again; its receipts reach this device as they would.
        this.logger.info({ ourMessageId, messageId: earlier }, 'sandbox message already sent; not sent again');
        this.scheduleReceipts(earlier, undefined);
        return { messageId: earlier };
      }
    }
    const messageId =
      ourMessageId === undefined ? webMessageId(this.random.bytes(8)) : derivedMessageId(ourMessageId, 16);
    const from = this.identity().jid;
    if (ourMessageId !== undefined) {
      sendLog.record({
        messageId: ourMessageId,
        whatsappMessageId: messageId,
        sessionId: this.sessionId,
        to: recipient.jid,
        at: this.options.clock.now().toISOString(),
      });
    }
    this.scheduleReceipts(messageId, () => {
      const message: InboundMessage = { messageId, from, text, at: this.options.clock.now() };
      this.options.network.deliver(recipient.phoneNumber, message, this.connection);
    });
    this.logger.debug({ messageId, to: recipient.jid }, 'sandbox message sent');
    return { messageId };
  }

  /** SENT, DELIVERED (when `deliver` hands the message over) and READ, on the configured delays. */
  private scheduleReceipts(messageId: string, deliver: (() => void) | undefined): void {
    const { sentMs, deliveredMs, readMs } = this.options.receipts;
    this.after(sentMs, () => {
      this.emitStatus(messageId, 'SENT');
      this.after(deliveredMs - sentMs, () => {
        deliver?.();
        this.emitStatus(messageId, 'DELIVERED');
        this.after(readMs - deliveredMs, () => this.emitStatus(messageId, 'READ'));
      });
    });
  }

  async requestPairingCode(phoneNumber: string): Promise<string> {
    this.require(['pairing'], 'requestPairingCode');
    const phone = parsePhone(phoneNumber);
    const code = pairingCodeFromBytes(this.random.bytes(5));
    // Valid as long as the pairing window: when the last QR code expires the session ends anyway.
    const expiresAt = this.pairingDeadline ?? this.options.clock.now();
    this.pairingCode = { code, phone, expiresAt };
    this.emit({ kind: 'pairingCode', code, expiresAt });
    return code;
  }

  currentQr(): ShownQr | undefined {
    return this.qr === undefined ? undefined : { ...this.qr };
  }

  scanQr(payload: string, phone: SandboxPhone): void {
    this.require(['pairing'], 'scanQr');
    const address = parsePhone(phone.phoneNumber);
    const current = this.qr;
    if (current !== undefined && payload === current.payload && this.options.clock.now() < current.expiresAt) {
      this.link(address, phone.pushName);
      return;
    }
    const shown = this.shownQrs.get(payload);
    if (shown !== undefined) {
      throw new EngineError(
        'QR_EXPIRED',
        `QR code #${shown.sequence} expired at ${shown.expiresAt.toISOString()}; scan the current one`,
      );
    }
    throw new EngineError('QR_UNKNOWN', 'this QR code was not shown by this session');
  }

  enterPairingCode(code: string, phone: Pick<SandboxPhone, 'pushName'> = {}): void {
    this.require(['pairing'], 'enterPairingCode');
    const requested = this.pairingCode;
    if (requested === undefined) {
      throw new EngineError('INVALID_STATE', 'no pairing code was requested; call requestPairingCode() first');
    }
    if (this.options.clock.now() >= requested.expiresAt) {
      throw new EngineError('PAIRING_CODE_INVALID', `the pairing code expired at ${requested.expiresAt.toISOString()}`);
    }
    if (normalisePairingCode(code) !== requested.code) {
      throw new EngineError('PAIRING_CODE_INVALID', 'the pairing code does not match the one requested');
    }
    this.link(requested.phone, phone.pushName);
  }

  injectInbound(from: string, text: string): InboundMessage {
    if (this._state !== 'connected') {
      throw new EngineError('NOT_CONNECTED', `cannot receive: the session is ${this._state}, not connected`);
    }
    const sender = parsePhone(from);
    checkText(text);
    const message: InboundMessage = {
      messageId: phoneMessageId(this.random.bytes(9)),
      from: sender.jid,
      text,
      at: this.options.clock.now(),
    };
    this.emit({ kind: 'inbound', message });
    return { ...message };
  }

  unlinkFromPhone(): void {
    const key = this.linkedDeviceKey();
    if (key === undefined) throw new EngineError('INVALID_STATE', 'no device is linked to a phone in this session');
    this.options.network.unlinkDevice(key);
    if (this._state === 'connected') this.end('LOGGED_OUT', 'the phone unlinked this device');
  }

  connectElsewhere(): void {
    this.require(['connected'], 'connectElsewhere');
    this.end('CONNECTION_REPLACED', 'another client connected with the same credentials');
  }

  dropConnection(): void {
    this.require(['pairing', 'connected'], 'dropConnection');
    this.end('CONNECTION_LOST', 'the sandbox dropped the connection');
  }

  private startPairing(): void {
    this.device = createDeviceKeys(this.random);
    const { firstTtlMs, nextTtlMs, maxCodes } = this.options.qr;
    this.pairingDeadline = new Date(this.options.clock.now().getTime() + firstTtlMs + (maxCodes - 1) * nextTtlMs);
    this.transition('pairing');
    this.showQr(1);
  }

  private showQr(sequence: number): void {
    const device = this.device;
    if (device === undefined) throw new Error('unreachable: pairing without device keys');
    const { firstTtlMs, nextTtlMs, maxCodes } = this.options.qr;
    const ttlMs = sequence === 1 ? firstTtlMs : nextTtlMs;
    const ref = `2@${this.random.bytes(72).toString('base64')}`;
    const payload = qrPayload(ref, device.noiseKey.public, device.identityKey.public, device.advSecretKey);
    const shown: ShownQr = { payload, expiresAt: new Date(this.options.clock.now().getTime() + ttlMs), sequence };
    this.qr = shown;
    this.shownQrs.set(payload, shown);
    // Scheduled before the event goes out, so a listener that stops the session also cancels it.
    this.qrTimer = this.after(ttlMs, () => {
      if (sequence >= maxCodes) this.end('QR_TIMEOUT', `${maxCodes} QR codes went unscanned`);
      else this.showQr(sequence + 1);
    });
    this.emit({ kind: 'qr', payload, expiresAt: shown.expiresAt, sequence });
  }

  private link(phone: PhoneAddress, pushName: string | undefined): void {
    const device = this.device;
    if (device === undefined) throw new Error('unreachable: linking without device keys');
    this.qrTimer?.cancel();
    this.qrTimer = undefined;
    this.qr = undefined;
    this.pairingCode = undefined;
    const key = deviceKeyId(device);
    const index = this.options.network.linkDevice(key, phone.phoneNumber);
    const account: SandboxAccount = {
      jid: phone.jid,
      deviceJid: `${phone.phoneNumber}:${index}@s.whatsapp.net`,
      phoneNumber: phone.phoneNumber,
      pushName: pushName ?? `Sandbox ${phone.phoneNumber}`,
      linkedAt: this.options.clock.now(),
    };
    this.account = account;
    this.goOnline();
    this.emit({ kind: 'authCheckpoint', state: encodeAuthState({ device, account }) });
    this.emit({ kind: 'connected', identity: this.identity() });
  }

  private goOnline(): void {
    this.transition('connected');
    const device = this.device;
    if (device !== undefined) this.options.network.connect(deviceKeyId(device), this.connection);
  }

  private identity(): LinkedIdentity {
    const account = this.account;
    if (account === undefined) throw new Error('unreachable: no account before linking');
    return { jid: account.jid, phoneNumber: account.phoneNumber, pushName: account.pushName };
  }

  /** The device whose credentials this session holds (or was given), if it was ever linked. */
  private linkedDeviceKey(): string | undefined {
    if (this.account !== undefined && this.device !== undefined) return deviceKeyId(this.device);
    if (this._state === 'idle' && this.input.authState !== null) {
      return deviceKeyId(decodeAuthState(this.input.authState).device);
    }
    return undefined;
  }

  private end(reason: EngineStopReason, detail: string): void {
    if (this._state === 'ended') return;
    for (const timer of this.timers) timer.cancel();
    this.timers.clear();
    this.qrTimer = undefined;
    this.qr = undefined;
    this.pairingCode = undefined;
    if (this.device !== undefined) this.options.network.disconnect(deviceKeyId(this.device), this.connection);
    this.transition('ended', reason);
    this.onEnded(this);
    this.deliver({ kind: 'ended', reason, detail });
  }

  private after(delayMs: number, task: () => void): Timer {
    const timer = this.options.scheduler.schedule(delayMs, () => {
      this.timers.delete(timer);
      task();
    });
    this.timers.add(timer);
    return timer;
  }

  private emitStatus(messageId: string, status: 'SENT' | 'DELIVERED' | 'READ'): void {
    this.emit({ kind: 'messageStatus', messageId, status, at: this.options.clock.now() });
  }

  /** Events stop at `ended`: whatever a listener did to the session meanwhile, nothing follows it. */
  private emit(event: EngineEvent): void {
    if (this._state === 'ended') return;
    this.deliver(event);
  }

  private deliver(event: EngineEvent): void {
    try {
      this.input.onEvent(event);
    } catch (error) {
      // A listener's failure must not break the session's timers or the caller of a control.
      this.logger.error({ err: error, event: event.kind }, 'sandbox event listener threw');
    }
  }

  private transition(to: SandboxSessionState, reason?: EngineStopReason): void {
    const from = this._state;
    this._state = to;
    this.logger.info({ from, to, reason }, 'sandbox session state changed');
  }

  private require(states: SandboxSessionState[], call: string): void {
    if (!states.includes(this._state)) {
      throw new EngineError(
        'INVALID_STATE',
        `${call}() needs the session to be ${states.join(' or ')}; it is ${this._state}`,
      );
    }
  }
}

/** The sandbox engine: sessions on a local, deterministic stand-in for the WhatsApp network. */
export class SandboxEngine implements Engine {
  readonly kind = 'SANDBOX' as const;
  /** Sessions opened and not ended, by id. */
  private readonly sessions = new Map<string, SandboxSession>();
  /** How often each session id was opened here, so a reopened session draws fresh seeded randomness. */
  private readonly openCounts = new Map<string, number>();

  constructor(private readonly options: CompiledSandboxOptions) {}

  get network(): SandboxNetwork {
    return this.options.network;
  }

  openSession(input: EngineSessionInput): SandboxSession {
    const { sessionId, authState } = input;
    if (this.sessions.has(sessionId)) {
      throw new EngineError('INVALID_STATE', `session ${JSON.stringify(sessionId)} is already open on this engine`);
    }
    const ordinal = (this.openCounts.get(sessionId) ?? 0) + 1;
    this.openCounts.set(sessionId, ordinal);
    const seed = this.options.seed;
    const random = seed === undefined ? cryptoRandom : sessionRandom(seed, sessionId, ordinal, authState);
    const session = new SandboxSession(input, this.options, random, (ended) => {
      if (this.sessions.get(sessionId) === ended) this.sessions.delete(sessionId);
    });
    this.sessions.set(sessionId, session);
    return session;
  }

  /** The sandbox controls of an open (not yet ended) session; UNKNOWN_SESSION otherwise. */
  controls(sessionId: string): SandboxControls {
    const session = this.sessions.get(sessionId);
    if (session === undefined) {
      throw new EngineError('UNKNOWN_SESSION', `no open sandbox session ${JSON.stringify(sessionId)} on this engine`);
    }
    return session.controls;
  }

  /** Sessions opened and not yet ended. */
  get openSessionCount(): number {
    return this.sessions.size;
  }
}

export function createSandboxEngine(options: SandboxEngineOptions = {}): SandboxEngine {
  return new SandboxEngine(compileSandboxOptions(options));
}

function parsePhone(phoneNumber: string): PhoneAddress {
  const address = parsePhoneAddress(phoneNumber);
  if (typeof address === 'string') {
    throw new EngineError('INVALID_PHONE_NUMBER', `${JSON.stringify(phoneNumber)} is not a phone number: ${address}`);
  }
  return address;
}

function checkText(text: string): void {
  if (text.length === 0) throw new EngineError('INVALID_MESSAGE', 'the text is empty');
  if (text.length > MAX_TEXT_LENGTH) {
    throw new EngineError('INVALID_MESSAGE', `the text is longer than ${MAX_TEXT_LENGTH} characters`);
  }
}

function deviceIndex(deviceJid: string): number {
  const match = /:(\d+)@/.exec(deviceJid);
  return match?.[1] === undefined ? 1 : Number(match[1]);
}
