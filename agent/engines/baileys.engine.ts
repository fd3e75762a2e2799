import {
  DisconnectReason,
  isJidBroadcast,
  isJidNewsletter,
  isLidUser,
  isPnUser,
  jidDecode,
  jidNormalizedUser,
  makeWASocket,
  normalizeMessageContent,
  proto,
  toNumber,
  type BaileysEventEmitter,
  type ConnectionState,
  type Contact,
  type UserFacingSocketConfig,
  type WABrowserDescription,
  type WAMessage,
  type WAMessageUpdate,
  type WAVersion,
} from '@whiskeysockets/baileys';
import { systemClock, type Clock } from '../../lib/clock.js';
import { systemScheduler, type Scheduler, type Timer } from '../../lib/timers.js';
import { DomainError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { createAuthState, type CheckpointedAuthState } from './baileys-auth-state.js';
import { derivedMessageId } from './whatsapp-format.js';
import type {
  Engine,
  EngineEvent,
  EngineSession,
  EngineSessionInput,
  EngineStopReason,
  InboundMessage,
  LinkedIdentity,
  MessageStatus,
} from './engine.js';

/** How long WhatsApp lets the first QR code of a pairing window live (Baileys' default qrTimeout). */
export const FIRST_QR_TTL_MS = 60_000;
/** How long each later QR code lives. */
export const NEXT_QR_TTL_MS = 20_000;
/**
 * How long we tell the user a pairing code is good for. WhatsApp does not
 * say; the code dies with the pairing window (the socket's QR refs, about
 * 60 s + 5 x 20 s), so this is an estimate, not a promise.
 */
export const PAIRING_CODE_TTL_MS = 160_000;
/** Restarts (515) in a row without reaching `open` before we call the link lost. */
export const MAX_CONSECUTIVE_RESTARTS = 3;
/** Timers fire late, never early: a close this near the last QR's expiry is the window running out. */
const QR_EXPIRY_SLACK_MS = 1_000;

/**
 * The part of a Baileys socket the engine uses. makeWASocket's socket has
 * it; tests pass a fake event emitter, so the engine runs offline.
 */
export interface BaileysSocket {
  readonly ev: Pick<BaileysEventEmitter, 'on'>;
  end(error: Error | undefined): Promise<void> | void;
  logout(msg?: string): Promise<void>;
  requestPairingCode(phoneNumber: string): Promise<string>;
  sendMessage(jid: string, content: { text: string }, options?: { messageId?: string }): Promise<WAMessage | undefined>;
}

/** Builds one socket; the engine calls it again after a restart (515). */
export type BaileysSocketFactory = (config: UserFacingSocketConfig) => BaileysSocket;

/** Options for the Baileys engine; createBaileysEngine() applies the defaults once. */
export interface BaileysEngineOptions {
  /** Default: Baileys' makeWASocket (the real network). */
  socketFactory?: BaileysSocketFactory;
  /** Default the system clock. Tests pass one ManualScheduler as both clock and scheduler. */
  clock?: Clock;
  /** Runs the checkpoint debounce timer. Default real timers (setTimeout). */
  scheduler?: Scheduler;
  /** Quiet time after the last auth change before a checkpoint goes out. Default 250 ms. */
  checkpointDebounceMs?: number;
  /** A stream of changes (history sync) still checkpoints at least this often. Default 2000 ms. */
  checkpointMaxDelayMs?: number;
  /**
   * WhatsApp Web version to announce. Default: the one this Baileys release
   * was built with. fetchLatestBaileysVersion() can supply a newer one; the
   * engine never goes to the network for it by itself.
   */
  version?: WAVersion;
  /** How the linked device appears on the phone. Default: Baileys' (Chrome on macOS). */
  browser?: WABrowserDescription;
  /** Baileys logs a lot, some of it key material at trace; default 'warn'. */
  baileysLogLevel?: string;
}

type CompiledOptions = Required<Omit<BaileysEngineOptions, 'version' | 'browser'>> &
  Pick<BaileysEngineOptions, 'version' | 'browser'>;

/** The production engine: one Baileys socket per session, auth state kept in checkpoints, not files. */
export class BaileysEngine implements Engine {
  readonly kind = 'BAILEYS' as const;

  constructor(private readonly options: CompiledOptions) {}

  openSession(input: EngineSessionInput): EngineSession {
    return new BaileysSession(input, this.options);
  }
}

export function createBaileysEngine(options: BaileysEngineOptions = {}): BaileysEngine {
  const compiled: CompiledOptions = {
    socketFactory: options.socketFactory ?? makeWASocket,
    clock: options.clock ?? systemClock,
    scheduler: options.scheduler ?? systemScheduler,
    checkpointDebounceMs: options.checkpointDebounceMs ?? 250,
    checkpointMaxDelayMs: options.checkpointMaxDelayMs ?? 2_000,
    baileysLogLevel: options.baileysLogLevel ?? 'warn',
    version: options.version,
    browser: options.browser,
  };
  if (compiled.checkpointDebounceMs < 0 || compiled.checkpointMaxDelayMs < compiled.checkpointDebounceMs) {
    throw new Error('checkpointMaxDelayMs must be at least checkpointDebounceMs, both non-negative');
  }
  return new BaileysEngine(compiled);
}

/**
 * A Baileys session's lifecycle:
 * - `idle`: built, not started.
 * - `connecting`: a socket is opening: logging in with stored credentials, or
 *   pairing (QR codes, pairing code), or reconnecting after a restart (515).
 * - `open`: linked and online; messages flow.
 * - `closing`: stop() or logout() is ending the socket.
 * - `ended`: the `ended` event went out (or start() failed); nothing more is emitted. Final.
 */
export type BaileysSessionState = 'idle' | 'connecting' | 'open' | 'closing' | 'ended';

/**
 * One session on one Baileys socket (a new socket after each restart). This
 * object is the only writer of the session's auth state: Baileys writes keys
 * through it, and only it emits checkpoints.
 */
class BaileysSession implements EngineSession {
  private state: BaileysSessionState = 'idle';
  private readonly log: Logger;
  private readonly baileysLogger: Logger;
  private auth: CheckpointedAuthState | undefined;
  private socket: BaileysSocket | undefined;
  /** Resolves when stop() or logout() has finished ending the socket. */
  private closing: Promise<void> | undefined;
  private restarts = 0;
  /** QR codes shown by the current socket; its first lives longer. */
  private qrInWindow = 0;
  /** Across the whole session, so the control plane can order them. */
  private qrSequence = 0;
  /** Monotonic time the last QR shown expires. */
  private qrDeadlineMs: number | undefined;
  private pairingWindow: Deferred | undefined;
  private checkpointDirty = false;
  private checkpointPendingSinceMs: number | undefined;
  private checkpointTimer: Timer | undefined;

  constructor(
    private readonly input: EngineSessionInput,
    private readonly options: CompiledOptions,
  ) {
    this.log = input.logger.child({ engine: 'baileys', sessionId: input.sessionId });
    this.baileysLogger = this.log.child({ component: 'baileys' }, { level: options.baileysLogLevel });
  }

  async start(): Promise<void> {
    if (this.state !== 'idle') {
      throw new DomainError('FAILED_PRECONDITION', `session cannot start from state ${this.state}`);
    }
    try {
      this.auth = createAuthState(this.input.authState, () => this.checkpointSoon());
    } catch (error) {
      this.setState('ended');
      throw new DomainError('INVALID_ARGUMENT', `auth state cannot be restored: ${messageOf(error)}`, {
        cause: error,
      });
    }
    this.setState('connecting');
    try {
      this.connect();
    } catch (error) {
      this.setState('ended');
      throw new DomainError('UNAVAILABLE', `Baileys socket could not be created: ${messageOf(error)}`, {
        cause: error,
      });
    }
  }

  async stop(): Promise<void> {
    switch (this.state) {
      case 'ended':
        return;
      case 'closing':
        return this.closing;
      case 'idle':
        this.finish('STOPPED', 'stopped before it started');
        return;
      case 'connecting':
      case 'open':
        break;
    }
    const socket = this.socket;
    this.setState('closing');
    this.closing = (async () => {
      try {
        await socket?.end(undefined);
      } catch (error) {
        this.log.warn({ err: error }, 'ending the Baileys socket failed');
      }
      this.finish('STOPPED', 'stopped');
    })();
    return this.closing;
  }

  async logout(): Promise<void> {
    if (this.state !== 'connecting' && this.state !== 'open') {
      throw new DomainError('FAILED_PRECONDITION', `session cannot log out from state ${this.state}`);
    }
    const socket = this.socket;
    if (!socket) throw new DomainError('FAILED_PRECONDITION', 'session has no socket');
    this.setState('closing');
    let failure: unknown;
    this.closing = (async () => {
      try {
        // Sends remove-companion-device (when linked), then ends the socket with 401.
        await socket.logout();
        this.finish('LOGGED_OUT', 'logged out');
      } catch (error) {
        failure = error;
        try {
          await socket.end(undefined);
        } catch (endError) {
          this.log.warn({ err: endError }, 'ending the Baileys socket failed');
        }
        // The device may still be linked: keep the stored auth state usable.
        this.finish('CONNECTION_LOST', `logout failed: ${messageOf(error)}`);
      }
    })();
    await this.closing;
    if (failure !== undefined) {
      throw new DomainError('UNAVAILABLE', `logout failed: ${messageOf(failure)}`, { cause: failure });
    }
  }

  async sendText(to: string, text: string, ourMessageId?: string): Promise<{ messageId: string }> {
    const socket = this.socket;
    if (this.state !== 'open' || !socket) {
      throw new DomainError('FAILED_PRECONDITION', `session is not connected (state ${this.state})`);
    }
    const jid = toWhatsAppJid(to);
    if (text.length === 0) throw DomainError.invalidArgument('text', 'must not be empty');
    let sent: WAMessage | undefined;
    try {
      // WhatsApp's id derived from ours: a dispatch repeated after a crash carries the same id, which WhatsApp drops.
      const options = ourMessageId === undefined ? undefined : { messageId: baileysMessageId(ourMessageId) };
      sent = await socket.sendMessage(jid, { text }, options);
    } catch (error) {
      throw new DomainError('UNAVAILABLE', `send failed: ${messageOf(error)}`, { cause: error });
    }
    const messageId = sent?.key.id;
    if (!messageId) throw new DomainError('INTERNAL', 'Baileys returned no message id');
    return { messageId };
  }

  async requestPairingCode(phoneNumber: string): Promise<string> {
    if (this.state !== 'connecting') {
      throw new DomainError('FAILED_PRECONDITION', `session cannot pair from state ${this.state}`);
    }
    if (this.auth?.isLinked()) throw new DomainError('FAILED_PRECONDITION', 'session is already linked');
    const digits = normalizePhoneNumber(phoneNumber);
    // Baileys can only ask once the socket is registering, which is when the first QR arrives.
    await this.waitForPairingWindow();
    const socket = this.socket;
    if (!socket || this.state !== 'connecting') {
      throw new DomainError('FAILED_PRECONDITION', `session cannot pair from state ${this.state}`);
    }
    let code: string;
    try {
      code = await socket.requestPairingCode(digits);
    } catch (error) {
      throw new DomainError('UNAVAILABLE', `pairing code request failed: ${messageOf(error)}`, { cause: error });
    }
    this.emit({
      kind: 'pairingCode',
      code,
      expiresAt: new Date(this.options.clock.now().getTime() + PAIRING_CODE_TTL_MS),
    });
    return code;
  }

  private connect(): void {
    const auth = this.auth;
    if (!auth) throw new Error('connect() before the auth state was built');
    const socket = this.options.socketFactory({
      auth: auth.state,
      logger: this.baileysLogger,
      ...(this.options.version ? { version: this.options.version } : {}),
      ...(this.options.browser ? { browser: this.options.browser } : {}),
      // A gateway is not a person reading: leave the phone's notifications on.
      markOnlineOnConnect: false,
      syncFullHistory: false,
    });
    this.socket = socket;
    this.qrInWindow = 0;
    this.qrDeadlineMs = undefined;
    // Listeners belong to one socket: a replaced socket's late events are dropped.
    const guard =
      <T>(handler: (arg: T) => void) =>
      (arg: T): void => {
        if (socket !== this.socket || this.state === 'ended') return;
        try {
          handler(arg);
        } catch (error) {
          this.log.error({ err: error }, 'handling a Baileys event failed');
        }
      };
    socket.ev.on(
      'connection.update',
      guard((update) => this.onConnectionUpdate(update)),
    );
    // Baileys applies the update to creds itself (its own listener came first).
    socket.ev.on(
      'creds.update',
      guard(() => this.checkpointSoon()),
    );
    socket.ev.on(
      'messages.upsert',
      guard(({ messages, type }) => {
        if (type !== 'notify') return;
        for (const message of messages) {
          const inbound = toInboundMessage(message, this.options.clock.now());
          if (inbound) this.emit({ kind: 'inbound', message: inbound });
        }
      }),
    );
    socket.ev.on(
      'messages.update',
      guard((updates) => {
        for (const event of toStatusEvents(updates, this.options.clock.now())) this.emit(event);
      }),
    );
  }

  private onConnectionUpdate(update: Partial<ConnectionState>): void {
    if (update.qr) this.onQr(update.qr);
    if (update.connection === 'open') this.onOpen();
    if (update.connection === 'close') this.onClose(update.lastDisconnect?.error);
  }

  private onQr(payload: string): void {
    if (this.state !== 'connecting') return;
    const ttlMs = this.qrInWindow === 0 ? FIRST_QR_TTL_MS : NEXT_QR_TTL_MS;
    this.qrInWindow += 1;
    this.qrSequence += 1;
    this.qrDeadlineMs = this.options.clock.monotonicMs() + ttlMs;
    this.emit({
      kind: 'qr',
      payload,
      expiresAt: new Date(this.options.clock.now().getTime() + ttlMs),
      sequence: this.qrSequence,
    });
    this.pairingWindow?.resolve();
    this.pairingWindow = undefined;
  }

  private onOpen(): void {
    if (this.state !== 'connecting' || !this.auth) return;
    this.restarts = 0;
    this.setState('open');
    this.emit({ kind: 'connected', identity: linkedIdentity(this.auth.state.creds.me) });
  }

  private onClose(error: Error | undefined): void {
    // stop() and logout() end the socket themselves and report why.
    if (this.state === 'closing' || this.state === 'ended' || !this.auth) return;
    const statusCode = statusCodeOf(error);
    const detail = describeDisconnect(statusCode, error);
    const qrWindowOver =
      this.qrDeadlineMs !== undefined && this.options.clock.monotonicMs() >= this.qrDeadlineMs - QR_EXPIRY_SLACK_MS;
    const decision = mapDisconnect(statusCode, { linked: this.auth.isLinked(), qrWindowOver });
    if (decision.action === 'end') {
      this.finish(decision.reason, detail);
      return;
    }
    if (this.restarts >= MAX_CONSECUTIVE_RESTARTS) {
      this.finish('CONNECTION_LOST', `${detail}; still restarting after ${this.restarts} restarts`);
      return;
    }
    this.restarts += 1;
    this.log.info({ statusCode, restarts: this.restarts }, 'WhatsApp asked for a restart; reconnecting');
    this.setState('connecting');
    try {
      this.connect();
    } catch (error) {
      this.finish('CONNECTION_LOST', `reconnect failed: ${messageOf(error)}`);
    }
  }

  /** Ends the session: settles the last checkpoint, then emits `ended` (the last event). */
  private finish(reason: EngineStopReason, detail: string): void {
    if (this.state === 'ended') return;
    if (keepsAuthState(reason)) {
      this.flushCheckpoint();
    } else {
      this.discardCheckpoint();
    }
    this.setState('ended');
    this.pairingWindow?.reject(new DomainError('FAILED_PRECONDITION', `session ended (${reason})`));
    this.pairingWindow = undefined;
    this.log.info({ reason, detail }, 'session ended');
    this.deliver({ kind: 'ended', reason, detail });
  }

  /** Coalesces a burst of auth changes into one checkpoint (debounced, with a ceiling). */
  private checkpointSoon(): void {
    if (this.state === 'ended') return;
    this.checkpointDirty = true;
    const nowMs = this.options.clock.monotonicMs();
    this.checkpointPendingSinceMs ??= nowMs;
    const ceilingMs = this.checkpointPendingSinceMs + this.options.checkpointMaxDelayMs - nowMs;
    this.checkpointTimer?.cancel();
    this.checkpointTimer = this.options.scheduler.schedule(
      Math.max(0, Math.min(this.options.checkpointDebounceMs, ceilingMs)),
      () => this.flushCheckpoint(),
    );
  }

  /**
   * Emits the pending checkpoint now. Nothing goes out before the device is
   * linked: a half-paired state (e.g. after a pairing-code request) would make
   * the next start try to log in instead of pairing afresh.
   */
  private flushCheckpoint(): void {
    this.checkpointTimer?.cancel();
    this.checkpointTimer = undefined;
    this.checkpointPendingSinceMs = undefined;
    if (!this.checkpointDirty || !this.auth?.isLinked()) return;
    this.checkpointDirty = false;
    this.emit({ kind: 'authCheckpoint', state: this.auth.snapshot() });
  }

  private discardCheckpoint(): void {
    this.checkpointTimer?.cancel();
    this.checkpointTimer = undefined;
    this.checkpointPendingSinceMs = undefined;
    this.checkpointDirty = false;
  }

  private waitForPairingWindow(): Promise<void> {
    if (this.qrInWindow > 0) return Promise.resolve();
    this.pairingWindow ??= deferred();
    return this.pairingWindow.promise;
  }

  private setState(next: BaileysSessionState): void {
    if (next === this.state) return;
    this.log.debug({ from: this.state, to: next }, 'session state');
    this.state = next;
  }

  private emit(event: EngineEvent): void {
    if (this.state === 'ended') return;
    this.deliver(event);
  }

  /** The agent's handler runs inside Baileys' event emitter: its failure must not break the socket. */
  private deliver(event: EngineEvent): void {
    try {
      this.input.onEvent(event);
    } catch (error) {
      this.log.error({ err: error, kind: event.kind }, 'engine event handler threw');
    }
  }
}

/** What to do when a socket closed by itself. */
export type DisconnectDecision = { action: 'reconnect' } | { action: 'end'; reason: EngineStopReason };

/** What mapDisconnect needs beyond the status code. */
export interface DisconnectContext {
  /** The creds belong to a linked device (pairing finished, now or in an earlier run). */
  linked: boolean;
  /** The last QR code shown had expired when the socket closed. */
  qrWindowOver: boolean;
}

/**
 * Baileys' close status code (lastDisconnect.error.output.statusCode) to our
 * decision. 408 means both "timed out" and "connection lost" in Baileys; it
 * is the pairing window running out (Baileys ends with 408 "QR refs attempts
 * ended" when the last QR expires) only for an unlinked device whose last QR
 * had expired; otherwise a network timeout.
 */
export function mapDisconnect(statusCode: number | undefined, context: DisconnectContext): DisconnectDecision {
  switch (statusCode) {
    case DisconnectReason.loggedOut:
      return { action: 'end', reason: 'LOGGED_OUT' };
    case DisconnectReason.connectionReplaced:
      return { action: 'end', reason: 'CONNECTION_REPLACED' };
    case DisconnectReason.restartRequired:
      // Sent right after pairing (and now and then later): same creds, new socket.
      return { action: 'reconnect' };
    case DisconnectReason.timedOut:
      return {
        action: 'end',
        reason: !context.linked && context.qrWindowOver ? 'QR_TIMEOUT' : 'CONNECTION_LOST',
      };
    case undefined:
    default:
      // 403 forbidden, 411, 428, 500 badSession, 503, unknown: the control plane decides.
      return { action: 'end', reason: 'CONNECTION_LOST' };
  }
}

/**
 * A sent message's proto WebMessageInfo.Status to ours; null for PENDING
 * (not on the server yet) and anything unknown. PLAYED (a voice note was
 * listened to) implies READ.
 */
export function mapMessageStatus(status: proto.WebMessageInfo.Status): MessageStatus | null {
  switch (status) {
    case proto.WebMessageInfo.Status.ERROR:
      return 'FAILED';
    case proto.WebMessageInfo.Status.SERVER_ACK:
      return 'SENT';
    case proto.WebMessageInfo.Status.DELIVERY_ACK:
      return 'DELIVERED';
    case proto.WebMessageInfo.Status.READ:
    case proto.WebMessageInfo.Status.PLAYED:
      return 'READ';
    case proto.WebMessageInfo.Status.PENDING:
    default:
      return null;
  }
}

/** Status updates of messages we sent, from one messages.update batch. */
export function toStatusEvents(updates: readonly WAMessageUpdate[], at: Date): EngineEvent[] {
  const events: EngineEvent[] = [];
  for (const { key, update } of updates) {
    if (!key.fromMe || !key.id || typeof update.status !== 'number') continue;
    const status = mapMessageStatus(update.status);
    if (status) events.push({ kind: 'messageStatus', messageId: key.id, status, at });
  }
  return events;
}

/**
 * An incoming message as our event, or null for what we do not forward:
 * our own messages, status/broadcast/newsletter traffic, and messages
 * without text (media without caption, reactions, protocol messages).
 * `from` is the chat to answer (the group for group messages), as a phone
 * number jid when Baileys knows it.
 */
export function toInboundMessage(message: WAMessage, receivedAt: Date): InboundMessage | null {
  const { key } = message;
  const chat = key.remoteJid;
  if (key.fromMe || !key.id || !chat || isJidBroadcast(chat) || isJidNewsletter(chat)) return null;
  const text = textOf(message);
  if (text === undefined) return null;
  const from = isLidUser(chat) && key.remoteJidAlt ? key.remoteJidAlt : chat;
  const seconds = message.messageTimestamp ? toNumber(message.messageTimestamp) : 0;
  return { messageId: key.id, from, text, at: seconds > 0 ? new Date(seconds * 1000) : receivedAt };
}

function textOf(message: WAMessage): string | undefined {
  // Unwraps ephemeral, view-once and similar envelopes.
  const content = normalizeMessageContent(message.message);
  const text =
    content?.conversation ??
    content?.extendedTextMessage?.text ??
    content?.imageMessage?.caption ??
    content?.videoMessage?.caption ??
    content?.documentMessage?.caption;
  return text ? text : undefined;
}

/** The account creds.me describes, as the phone number jid without a device suffix. */
export function linkedIdentity(me: Contact | undefined): LinkedIdentity {
  const id = me?.id && isLidUser(me.id) && me.phoneNumber ? me.phoneNumber : (me?.id ?? '');
  const jid = id ? jidNormalizedUser(id) : '';
  const user = isPnUser(jid) ? jidDecode(jid)?.user : undefined;
  return { jid, phoneNumber: user ? `+${user}` : '', pushName: me?.name ?? me?.notify ?? '' };
}

/** A phone number in any common spelling ("+1 (555) 123-4567") to the digits WhatsApp wants. */
export function normalizePhoneNumber(phoneNumber: string): string {
  const digits = phoneNumber.replace(/[\s()+.-]/g, '');
  if (!/^\d{6,15}$/.test(digits)) {
    throw DomainError.invalidArgument('phoneNumber', 'must be an international number, digits only after the +');
  }
  return digits;
}

/** A recipient given as a jid (kept) or a phone number (made a user jid). */
export function toWhatsAppJid(to: string): string {
  if (to.includes('@')) {
    if (!/^[^@\s]+@[a-z.]+$/.test(to)) throw DomainError.invalidArgument('to', 'is not a WhatsApp jid');
    return to;
  }
  return `${normalizePhoneNumber(to)}@s.whatsapp.net`;
}

/** The close reasons after which the stored auth state is still the one to resume from. */
function keepsAuthState(reason: EngineStopReason): boolean {
  switch (reason) {
    case 'STOPPED':
    case 'CONNECTION_LOST':
      return true;
    case 'LOGGED_OUT':
    case 'QR_TIMEOUT':
      return false;
    case 'CONNECTION_REPLACED':
      // Another owner writes this session's state now; ours must not overwrite it.
      return false;
  }
}

function statusCodeOf(error: unknown): number | undefined {
  // Baileys closes with Boom errors: the code is in output.statusCode.
  if (typeof error !== 'object' || error === null || !('output' in error)) return undefined;
  const { output } = error;
  if (typeof output !== 'object' || output === null || !('statusCode' in output)) return undefined;
  return typeof output.statusCode === 'number' ? output.statusCode : undefined;
}

// What a socket error says when the worker cannot reach WhatsApp at all (DNS, routing, firewall).
const UNREACHABLE = /\b(ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT)\b/;

/**
 * Why the connection closed, for the tenant (it becomes the session's
 * status reason). A worker that cannot reach WhatsApp says so plainly,
 * since the fix is the worker's network, not the session.
 */
export function describeDisconnect(statusCode: number | undefined, error: Error | undefined): string {
  const message = error?.message ?? 'connection closed';
  const unreachable = UNREACHABLE.exec(message);
  if (unreachable) {
    return `this worker cannot reach WhatsApp (${unreachable[1] ?? 'network error'}: ${message}); check its network, DNS or proxy`;
  }
  const name = statusCode === undefined ? 'no status' : (DisconnectReason[statusCode] ?? 'unknown');
  return `${name} (${statusCode ?? '-'}): ${message}`;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

interface Deferred {
  promise: Promise<void>;
  resolve(): void;
  reject(error: Error): void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * The WhatsApp id Baileys sends our message under: the shape Baileys'
 * generateMessageIDV2 gives ('3EB0' + 18 upper-case hex digits), derived
 * from our id so a repeated dispatch repeats the id and WhatsApp drops it.
 */
export function baileysMessageId(ourMessageId: string): string {
  return derivedMessageId(ourMessageId, 18);
}
