import { DomainError, type DomainErrorCode } from '../../lib/errors.js';
import { EngineError, type EngineErrorCode } from '../engines/engine-error.js';

/** What goes up in a ResponseError (and a refused CommandAck): a google.rpc code name and a message for people. */
export interface ResponseErrorValue {
  code: DomainErrorCode;
  message: string;
}

/**
 * Engine codes as the control plane sees them. A Record, so a new engine
 * code does not compile until it is given one: INVALID_ARGUMENT when the
 * input is wrong whatever the session's state, FAILED_PRECONDITION when the
 * session's state is what is wrong.
 */
const ENGINE_CODES: Readonly<Record<EngineErrorCode, DomainErrorCode>> = {
  INVALID_RECIPIENT: 'INVALID_ARGUMENT',
  INVALID_MESSAGE: 'INVALID_ARGUMENT',
  NOT_CONNECTED: 'FAILED_PRECONDITION',
  INVALID_PHONE_NUMBER: 'INVALID_ARGUMENT',
  INVALID_AUTH_STATE: 'INVALID_ARGUMENT',
  INVALID_STATE: 'FAILED_PRECONDITION',
  UNKNOWN_SESSION: 'NOT_FOUND',
  QR_EXPIRED: 'FAILED_PRECONDITION',
  QR_UNKNOWN: 'INVALID_ARGUMENT',
  PAIRING_CODE_INVALID: 'INVALID_ARGUMENT',
};

/**
 * Normalises anything a session call threw into what the control plane is
 * told. The sandbox throws EngineError, Baileys (and the host itself)
 * DomainError, whose codes already are google.rpc names. Anything else is a
 * bug: INTERNAL, and its message stays in the agent's logs (`unexpected`
 * tells the caller to log it), never on the wire.
 */
export function toResponseError(error: unknown): ResponseErrorValue & { unexpected: boolean } {
  if (error instanceof DomainError) return { code: error.code, message: error.message, unexpected: false };
  if (error instanceof EngineError) {
    return { code: ENGINE_CODES[error.code], message: error.message, unexpected: false };
  }
  return { code: 'INTERNAL', message: 'the session failed unexpectedly; see the agent log', unexpected: true };
}

/** A refused CommandAck's detail: the code first, so the control plane can tell refusals apart. */
export function refusalDetail(error: ResponseErrorValue): string {
  return `${error.code}: ${error.message}`;
}
