import { createContextKey, type ConnectRouter } from '@connectrpc/connect';
import type { UniversalHandler, UniversalServerRequest, UniversalServerResponse } from '@connectrpc/connect/protocol';
import type { DomainErrorDetails } from '../../lib/errors.js';
import { originKey, peerKey } from './context.js';
import { refusalCause, type RefusedRequests, type RequestRefusalCause } from './refused-requests.js';
import { undecodableMessage } from './undecodable.js';

/** Set by the outermost interceptor: the request reached our interceptors (which log and map its end). */
export const interceptedKey = createContextKey<{ reached: boolean } | undefined>(undefined, {
  description: 'request reached the interceptors',
});

/**
 * Connect decodes a unary request before any interceptor runs, and answers
 * one it cannot decode itself: undecodable binary protobuf with INTERNAL
 * (its binary serialization maps every decoding failure to Internal), bad
 * JSON with INVALID_ARGUMENT, and neither with a log line. A caller's bad
 * bytes are a caller error, so this wraps every unary handler: a request
 * that never reached the interceptors has a decoding failure reported as
 * INVALID_ARGUMENT on all three protocols, counts against its address's
 * anonymous rate limit (RESOURCE_EXHAUSTED with retry-after once over it),
 * and is counted and logged (throttled) by RefusedRequests. (Streaming
 * requests are decoded inside the interceptor chain; the validation
 * interceptor maps their decoding failures.)
 *
 * The router's handler list is edited in place, inside `routes`, before the
 * Node adapter indexes it.
 */
export function reportRequestRefusals(router: ConnectRouter, refusals: RefusedRequests): void {
  const handlers = router.handlers;
  for (const [i, handler] of handlers.entries()) {
    if (handler.method.methodKind === 'unary') handlers[i] = withRefusalsReported(handler, refusals);
  }
}

type Protocol = 'connect' | 'grpc' | 'grpc-web';

function withRefusalsReported(handler: UniversalHandler, refusals: RefusedRequests): UniversalHandler {
  const rpc = `${handler.service.typeName}/${handler.method.name}`;
  const inputType = handler.method.input.typeName;
  const wrapped = async (req: UniversalServerRequest): Promise<UniversalServerResponse> => {
    const intercepted = { reached: false };
    req.contextValues?.set(interceptedKey, intercepted);
    const res = await handler(req);
    if (intercepted.reached) return res;
    const protocol = protocolOf(req.header);
    const refusal = await readRefusal(res, protocol);
    if (!refusal) return res;
    const explained = undecodableMessage(inputType, refusal.code, refusal.message);
    let code = explained === undefined ? refusal.code : 'invalid_argument';
    let message = explained ?? refusal.message;
    let cause: RequestRefusalCause = refusalCause(code);
    const ip = req.contextValues?.get(originKey).ip ?? '';
    const limited = await refusals.overLimit(ip);
    if (limited) [code, message, cause] = ['resource_exhausted', limited.message, 'rate_limited'];
    const fields = {
      rpc,
      protocol,
      peer: req.contextValues?.get(peerKey),
      requestId: req.header.get('x-request-id') ?? undefined,
      cause,
      // Connect's wire name (invalid_argument), spelt as every log line spells codes (logCode).
      code: code.toUpperCase(),
      error: message,
    };
    refusals.record(ip, cause, (suppressed) =>
      refusals.logger.info({ ...fields, suppressed }, 'rpc refused before it was decoded'),
    );
    if (limited) return refusal.rewrite(code, message, limited.details);
    return explained === undefined ? refusal.response : refusal.rewrite(code, message);
  };
  return Object.assign(wrapped, {
    protocolNames: handler.protocolNames,
    supportedContentType: handler.supportedContentType,
    allowedMethods: handler.allowedMethods,
    requestPath: handler.requestPath,
    service: handler.service,
    method: handler.method,
  });
}

function protocolOf(header: Headers): Protocol {
  const type = header.get('content-type') ?? '';
  if (type.startsWith('application/grpc-web')) return 'grpc-web';
  if (type.startsWith('application/grpc')) return 'grpc';
  return 'connect';
}

/** An error response as read back, with a way to answer with another code and message instead. */
interface Refusal {
  /** Connect's lower-case code name (`internal`, `invalid_argument`...). */
  code: string;
  message: string;
  /** The response as it was (its body already read). */
  response: UniversalServerResponse;
  /** The same response with another code and message, and `metadata` (retry-after...) where the protocol puts it. */
  rewrite(code: string, message: string, metadata?: DomainErrorDetails): UniversalServerResponse;
}

/**
 * Reads the error a refused unary call carries, in the protocol's own place
 * for it. Only used for requests that never reached a handler, whose
 * responses are small, so reading the whole body is cheap.
 */
async function readRefusal(res: UniversalServerResponse, protocol: Protocol): Promise<Refusal | undefined> {
  const body = await readAll(res.body);
  const response = { ...res, body: once(body) };
  switch (protocol) {
    case 'connect': {
      if (res.status < 400 || res.header?.get('content-encoding')) return undefined;
      const parsed = parseJson(body);
      if (!parsed) return undefined;
      return {
        code: parsed.code,
        message: parsed.message,
        response,
        rewrite: (code, message, metadata) => {
          const bytes = new TextEncoder().encode(JSON.stringify({ code, message }));
          const header = withMetadata(new Headers(res.header), metadata);
          header.set('content-length', String(bytes.byteLength));
          return { ...res, status: HTTP_STATUS[code] ?? res.status, header, body: once(bytes) };
        },
      };
    }
    case 'grpc': {
      // A trailers-only answer carries the status in the headers.
      const trailer = res.trailer ?? res.header ?? new Headers();
      const status = trailer.get('grpc-status');
      if (status === null || status === '0') return undefined;
      return {
        code: GRPC_CODES[Number(status)] ?? 'unknown',
        message: decodeGrpcMessage(trailer.get('grpc-message') ?? ''),
        response,
        rewrite: (code, message, metadata) => {
          const rewritten = withMetadata(new Headers(trailer), metadata);
          rewritten.set('grpc-status', String(GRPC_CODES.indexOf(code)));
          rewritten.set('grpc-message', encodeURIComponent(message));
          return res.trailer ? { ...response, trailer: rewritten } : { ...response, header: rewritten };
        },
      };
    }
    case 'grpc-web': {
      // Trailers travel as the body's last frame, flagged 0x80; a refused call's body is only that frame.
      const flags = body[0] ?? 0;
      if (body.byteLength < 5 || (flags & 0x80) === 0 || (flags & 0x01) !== 0) return undefined;
      const trailer = parseTrailerFrame(body.subarray(5));
      const status = trailer.get('grpc-status');
      if (status === null || status === '0') return undefined;
      return {
        code: GRPC_CODES[Number(status)] ?? 'unknown',
        message: decodeGrpcMessage(trailer.get('grpc-message') ?? ''),
        response,
        rewrite: (code, message, metadata) => {
          withMetadata(trailer, metadata);
          trailer.set('grpc-status', String(GRPC_CODES.indexOf(code)));
          trailer.set('grpc-message', encodeURIComponent(message));
          return { ...response, body: once(trailerFrame(trailer)) };
        },
      };
    }
  }
}

/** gRPC status codes by number, as Connect names them. */
const GRPC_CODES = [
  'ok',
  'canceled',
  'unknown',
  'invalid_argument',
  'deadline_exceeded',
  'not_found',
  'already_exists',
  'permission_denied',
  'resource_exhausted',
  'failed_precondition',
  'aborted',
  'out_of_range',
  'unimplemented',
  'internal',
  'unavailable',
  'data_loss',
  'unauthenticated',
];

/** The HTTP status of a Connect unary error, for the codes this module writes. */
const HTTP_STATUS: Record<string, number> = { invalid_argument: 400, resource_exhausted: 429 };

/** Adds an error's details as headers (retry-after and ratelimit-*, the only ones rate limits carry). */
function withMetadata(headers: Headers, metadata: DomainErrorDetails | undefined): Headers {
  for (const [key, value] of Object.entries(metadata ?? {})) headers.set(key, String(value));
  return headers;
}

function parseJson(bytes: Uint8Array): { code: string; message: string } | undefined {
  try {
    const value = JSON.parse(new TextDecoder().decode(bytes)) as { code?: unknown; message?: unknown };
    return typeof value.code === 'string'
      ? { code: value.code, message: typeof value.message === 'string' ? value.message : '' }
      : undefined;
  } catch {
    return undefined;
  }
}

function parseTrailerFrame(data: Uint8Array): Headers {
  const headers = new Headers();
  for (const line of new TextDecoder().decode(data).split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  return headers;
}

function trailerFrame(trailer: Headers): Uint8Array {
  const lines: string[] = [];
  trailer.forEach((value, key) => lines.push(`${key}: ${value}\r\n`));
  const data = new TextEncoder().encode(lines.join(''));
  const frame = new Uint8Array(5 + data.byteLength);
  frame[0] = 0x80;
  new DataView(frame.buffer).setUint32(1, data.byteLength);
  frame.set(data, 5);
  return frame;
}

function decodeGrpcMessage(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

async function readAll(body: UniversalServerResponse['body']): Promise<Uint8Array> {
  if (body === undefined) return new Uint8Array();
  const chunks: Uint8Array[] = [];
  for await (const chunk of body) chunks.push(chunk);
  return Buffer.concat(chunks);
}

async function* once(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  if (bytes.byteLength > 0) yield bytes;
}
