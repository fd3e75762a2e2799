import { Code, ConnectError } from '@connectrpc/connect';
import { DomainError, type DomainErrorCode } from '../../lib/errors.js';

/** The one table from domain error codes to Connect/gRPC codes. */
const CODES: Record<DomainErrorCode, Code> = {
  INVALID_ARGUMENT: Code.InvalidArgument,
  NOT_FOUND: Code.NotFound,
  ALREADY_EXISTS: Code.AlreadyExists,
  FAILED_PRECONDITION: Code.FailedPrecondition,
  PERMISSION_DENIED: Code.PermissionDenied,
  UNAUTHENTICATED: Code.Unauthenticated,
  RESOURCE_EXHAUSTED: Code.ResourceExhausted,
  UNAVAILABLE: Code.Unavailable,
  DEADLINE_EXCEEDED: Code.DeadlineExceeded,
  ABORTED: Code.Aborted,
  INTERNAL: Code.Internal,
};

/**
 * A call's outcome as every log line spells it: gRPC's canonical status
 * name (OK, INVALID_ARGUMENT, RESOURCE_EXHAUSTED), as grpc-status tools,
 * `buf curl` and the domain error codes spell it, so one query finds a code
 * whichever path logged it. (Connect's JSON says invalid_argument on the
 * wire; logs do not follow the protocol of the call.)
 */
export function logCode(code: Code | 'ok'): string {
  if (code === 'ok') return 'OK';
  return Code[code].replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase();
}

const STANDARD_HEADERS = new Set(['retry-after', 'ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset']);

/** Result of classifying a thrown value: the error to send, and whether it was expected. */
export interface MappedError {
  error: ConnectError;
  /** Unexpected errors are logged with their cause; the caller only sees the request id. */
  unexpected: boolean;
}

/**
 * Normalises anything thrown by a handler. Domain errors keep their message;
 * protocol errors raised by Connect itself pass through; everything else
 * becomes INTERNAL carrying only the request id, never the internal message.
 */
export function toConnectError(thrown: unknown, requestId: string): MappedError {
  if (thrown instanceof DomainError) {
    const metadata = new Headers();
    for (const [key, value] of Object.entries(thrown.details)) {
      // Standard HTTP names (retry-after, ratelimit-*) go out as they are; the rest are namespaced.
      const name = STANDARD_HEADERS.has(key) ? key : `x-error-${key.replace(/[^a-z0-9-]/gi, '-').toLowerCase()}`;
      metadata.set(name, String(value));
    }
    return { error: new ConnectError(thrown.message, CODES[thrown.code], metadata), unexpected: false };
  }
  if (thrown instanceof ConnectError) {
    return { error: thrown, unexpected: thrown.code === Code.Internal || thrown.code === Code.Unknown };
  }
  return {
    error: new ConnectError(`internal error (request id ${requestId})`, Code.Internal),
    unexpected: true,
  };
}
