import type { JsonReadOptions, JsonWriteOptions } from '@bufbuild/protobuf';
import { createContextValues, type ConnectRouter } from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import type { MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from '../../lib/logger.js';
import type { LiveAccess } from '../identity/live-access.js';
import type { RateLimits } from '../identity/rate-limits.js';
import type { StreamLimits } from '../identity/stream-limits.js';
import { createAuthInterceptor, type CredentialVerifier } from './auth.interceptor.js';
import { clientGoneKey, originKey, peerKey } from './context.js';
import { createEntityManagerInterceptor, createObservabilityInterceptor } from './interceptors.js';
import type { NodeHandlerFn } from './listeners.js';
import { createStreamGuardInterceptor } from './stream-guard.interceptor.js';
import { createValidationInterceptor } from './validation.interceptor.js';

/**
 * How request JSON is read. A misspelt field or an enum name we do not know
 * is the caller's mistake to hear about (INVALID_ARGUMENT naming it), not
 * something to ignore: ignored, it reads as "unset", and an unset filter
 * matches everything. Invalid UTF-8 is refused rather than stored as U+FFFD.
 * (`textDecoder` is read by Connect's JSON serialization, though its option
 * type does not list it.)
 */
const STRICT_JSON: Partial<JsonReadOptions & JsonWriteOptions> & { textDecoder: InstanceType<typeof TextDecoder> } = {
  ignoreUnknownFields: false,
  textDecoder: new TextDecoder('utf-8', { fatal: true }),
};

/** What the RPC pipeline needs. */
export interface RpcHandlerDependencies {
  routes: (router: ConnectRouter) => void;
  logger: Logger;
  authenticator: CredentialVerifier;
  rateLimits: RateLimits;
  liveAccess: LiveAccess;
  streamLimits: StreamLimits;
  orm: MikroORM;
  shutdownSignal: AbortSignal;
  maxRequestBytes: number;
  /** Requests that are not RPCs (health probes, JWKS, metrics). */
  fallback: NodeHandlerFn;
}

/**
 * The one RPC pipeline both ports serve: request id, logging and error
 * mapping; authentication, authorisation and rate limits; stream limits and
 * live re-checks; validation; a request-scoped EntityManager; then the
 * route table.
 */
export function createRpcHandler(deps: RpcHandlerDependencies): NodeHandlerFn {
  return connectNodeAdapter({
    routes: deps.routes,
    interceptors: [
      createObservabilityInterceptor(deps.logger),
      createAuthInterceptor(deps.authenticator, deps.rateLimits),
      createStreamGuardInterceptor(deps.liveAccess, deps.streamLimits),
      createValidationInterceptor(),
      createEntityManagerInterceptor(deps.orm),
    ],
    shutdownSignal: deps.shutdownSignal,
    readMaxBytes: deps.maxRequestBytes,
    jsonOptions: STRICT_JSON,
    contextValues: (req) =>
      createContextValues()
        .set(peerKey, remoteAddress(req))
        .set(originKey, { ip: req.socket.remoteAddress ?? '', userAgent: String(req.headers['user-agent'] ?? '') })
        .set(clientGoneKey, clientGone(req)),
    fallback: deps.fallback,
  });
}

/**
 * Whether the HTTP/2 stream (or, on HTTP/1.1, the connection) of the call is
 * closed: before we answer, only the client ends it. Taken now: Node lets go
 * of `req.socket` later on.
 */
function clientGone(req: Parameters<NodeHandlerFn>[0]): () => boolean {
  if ('stream' in req) {
    const { stream } = req;
    return () => stream.closed || stream.destroyed;
  }
  const { socket } = req;
  return () => socket.destroyed;
}

function remoteAddress(req: Parameters<NodeHandlerFn>[0]): string {
  const socket = req.socket;
  return socket.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort ?? ''}` : '';
}
