/**
 * Why an engine refused a call. A closed set, so the agent can map each code
 * to what it reports upstream in one exhaustive switch; engines never throw
 * anything else on purpose.
 */
export type EngineErrorCode =
  /** sendText's recipient is not a phone number or user JID WhatsApp could deliver to. */
  | 'INVALID_RECIPIENT'
  /** The message itself cannot be sent (empty, or longer than WhatsApp accepts). */
  | 'INVALID_MESSAGE'
  /** The session is not linked and online, so nothing can be sent. */
  | 'NOT_CONNECTED'
  /** A phone number given to pair with (or to simulate a phone) is not one. */
  | 'INVALID_PHONE_NUMBER'
  /** The auth state given to the session cannot be used: unreadable, another format, or an unknown version. */
  | 'INVALID_AUTH_STATE'
  /** The call does not fit the session's lifecycle (e.g. start() twice, a pairing code once linked). */
  | 'INVALID_STATE'
  /** Sandbox only: no open session has that id on this engine. */
  | 'UNKNOWN_SESSION'
  /** Sandbox only: the scanned QR code was shown by this session but is no longer valid. */
  | 'QR_EXPIRED'
  /** Sandbox only: the scanned QR code was never shown by this session. */
  | 'QR_UNKNOWN'
  /** Sandbox only: the code typed on the simulated phone is not the one the session requested. */
  | 'PAIRING_CODE_INVALID';

/** The one error type engines throw; `cause` keeps the underlying error for the logs. */
export class EngineError extends Error {
  override readonly name = 'EngineError';
  readonly code: EngineErrorCode;

  constructor(code: EngineErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.code = code;
  }
}
