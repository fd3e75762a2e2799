/**
 * The one error type services throw. Its code is a closed set that the
 * transport maps to Connect/gRPC codes in one table (transport/error-mapping.ts);
 * services never import Connect.
 */
export type DomainErrorCode =
  | 'INVALID_ARGUMENT'
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'FAILED_PRECONDITION'
  | 'PERMISSION_DENIED'
  | 'UNAUTHENTICATED'
  | 'RESOURCE_EXHAUSTED'
  | 'UNAVAILABLE'
  | 'DEADLINE_EXCEEDED'
  | 'ABORTED'
  | 'INTERNAL';

/** Structured details a caller may act on (e.g. the field that was invalid). */
export type DomainErrorDetails = Readonly<Record<string, string | number | boolean>>;

export class DomainError extends Error {
  override readonly name = 'DomainError';
  readonly code: DomainErrorCode;
  readonly details: DomainErrorDetails;

  constructor(code: DomainErrorCode, message: string, options: { cause?: unknown; details?: DomainErrorDetails } = {}) {
    super(message, { cause: options.cause });
    this.code = code;
    this.details = options.details ?? {};
  }

  static notFound(what: string, id: string): DomainError {
    return new DomainError('NOT_FOUND', `${what} ${JSON.stringify(id)} not found`);
  }

  static invalidArgument(field: string, message: string): DomainError {
    return new DomainError('INVALID_ARGUMENT', `${field}: ${message}`, { details: { field } });
  }
}

/**
 * A failure that stops the process from starting (bad configuration, a
 * server that cannot be reached). main() prints its message as one line,
 * without a stack trace, and exits non-zero.
 */
export class StartupError extends Error {
  override readonly name = 'StartupError';
}
