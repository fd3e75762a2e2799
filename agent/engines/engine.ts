import type { Logger } from '../../lib/logger.js';

/** The engines a worker can run sessions on (mirrors the proto enum). */
export type EngineKind = 'SANDBOX' | 'BAILEYS';

/** Why a session's link to WhatsApp ended; the control plane maps each to a session state. */
export type EngineStopReason =
  /** stop() was called; the link may be resumed from the auth state. */
  | 'STOPPED'
  /** Every QR code of the pairing window went unscanned (WhatsApp gives up, so do we). */
  | 'QR_TIMEOUT'
  /** The phone unlinked the device, or logout() was called: the auth state is worthless now. */
  | 'LOGGED_OUT'
  /** Another device or worker uses the same credentials (WhatsApp 440): never auto-reconnect. */
  | 'CONNECTION_REPLACED'
  /** Anything else that ended the link (network, protocol error); retryable. */
  | 'CONNECTION_LOST';

/** The account a session is linked to, once connected. */
export interface LinkedIdentity {
  /** WhatsApp id of the linked device's account, e.g. 15551234567@s.whatsapp.net. */
  jid: string;
  phoneNumber: string;
  pushName: string;
}

export type MessageStatus = 'SENT' | 'DELIVERED' | 'READ' | 'FAILED';

/** One inbound message, as the engine saw it. */
export interface InboundMessage {
  messageId: string;
  from: string;
  text: string;
  at: Date;
}

/**
 * Everything a running session reports. The agent stamps each with the
 * session id and assignment epoch before it goes up the stream.
 */
export type EngineEvent =
  /** A fresh QR code to show; `payload` is what the QR encodes. */
  | { kind: 'qr'; payload: string; expiresAt: Date; sequence: number }
  | { kind: 'pairingCode'; code: string; expiresAt: Date }
  /** Linked and online. */
  | { kind: 'connected'; identity: LinkedIdentity }
  /**
   * A full snapshot of the auth state (credentials and signal keys), to be
   * stored by the control plane so any worker can resume the session.
   */
  | { kind: 'authCheckpoint'; state: Uint8Array }
  /** The link ended; after this the session emits nothing more. */
  | { kind: 'ended'; reason: EngineStopReason; detail: string }
  | { kind: 'inbound'; message: InboundMessage }
  | { kind: 'messageStatus'; messageId: string; status: MessageStatus; at: Date };

/** One linked (or linking) WhatsApp account running on this worker. */
export interface EngineSession {
  /** Connects: resumes from the auth state, or starts pairing (QR codes) without one. */
  start(): Promise<void>;
  /** Disconnects and keeps the auth state, so the session can resume here or elsewhere. */
  stop(): Promise<void>;
  /** Unlinks the device from the account and forgets the auth state. */
  logout(): Promise<void>;
  /**
   * Sends a text message; resolves with WhatsApp's message id once the server
   * took it. `ourMessageId` (the control plane's id of the message) makes the
   * send idempotent: WhatsApp's id is derived from it and a repeat of an id
   * already sent is not sent again (resolving with the same WhatsApp id).
   * Absent only on the legacy request path, which has no id of ours.
   */
  sendText(to: string, text: string, ourMessageId?: string): Promise<{ messageId: string }>;
  /** Pairs by phone number instead of QR: returns the 8-character code the user types on the phone. */
  requestPairingCode(phoneNumber: string): Promise<string>;
}

/** What an engine needs to open one session. */
export interface EngineSessionInput {
  sessionId: string;
  /** The last checkpointed auth state, or null for a session never linked. */
  authState: Uint8Array | null;
  onEvent: (event: EngineEvent) => void;
  logger: Logger;
}

/** A way of running sessions: the sandbox (local stand-in) or Baileys (the real network). */
export interface Engine {
  readonly kind: EngineKind;
  openSession(input: EngineSessionInput): EngineSession;
}
