import { randomUUID } from 'node:crypto';
import { Code, ConnectError, type HandlerContext, type Interceptor } from '@connectrpc/connect';
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from '../../lib/logger.js';
import { clientGoneKey, entityManagerKey, peerKey, requestIdKey } from './context.js';
import { loggableError } from '../platform/loggable-error.js';
import { logCode, toConnectError } from './error-mapping.js';
import { interceptedKey } from './request-refusals.js';

const REQUEST_ID = /^[\w.:-]{1,128}$/;

/**
 * Outermost interceptor: assigns the request id, maps every error through the
 * one table, and logs each RPC once with its method, code and duration
 * (for streams, when the stream ends). A stream the client ended (cancelled,
 * or its connection went away) is logged as `Canceled` at info, whatever the
 * handler made of it (a premature close reading its requests is not ours).
 */
export function createObservabilityInterceptor(logger: Logger): Interceptor {
  return (next) => async (req) => {
    const started = performance.now();
    const intercepted = req.contextValues.get(interceptedKey);
    if (intercepted) intercepted.reached = true;
    const given = req.header.get('x-request-id');
    const requestId = given && REQUEST_ID.test(given) ? given : randomUUID();
    req.contextValues.set(requestIdKey, requestId);
    const rpc = `${req.service.typeName}/${req.method.name}`;
    const base = { rpc, requestId, protocol: protocolOf(req.header), peer: req.contextValues.get(peerKey) };
    const clientGone = req.stream ? req.contextValues.get(clientGoneKey) : () => false;

    const elapsed = () => Math.round((performance.now() - started) * 100) / 100;
    const canceled = (): ConnectError => {
      logger.info(
        { ...base, code: logCode(Code.Canceled), durationMs: elapsed(), error: 'ended by the client' },
        'rpc',
      );
      return new ConnectError('the client ended the call', Code.Canceled);
    };
    const succeeded = () => {
      if (clientGone()) canceled();
      else logger.info({ ...base, code: logCode('ok'), durationMs: elapsed() }, 'rpc');
    };
    const failed = (thrown: unknown): ConnectError => {
      if (clientGone()) return canceled();
      const { error, unexpected } = toConnectError(thrown, requestId);
      const fields = { ...base, code: logCode(error.code), durationMs: elapsed() };
      if (unexpected) logger.error({ ...fields, err: loggableError(thrown) }, 'rpc failed unexpectedly');
      else logger.info({ ...fields, error: error.rawMessage }, 'rpc');
      error.metadata.set('x-request-id', requestId);
      return error;
    };

    try {
      const res = await next(req);
      res.header.set('x-request-id', requestId);
      if (!res.stream) {
        succeeded();
        return res;
      }
      return { ...res, message: observe(res.message, succeeded, failed) };
    } catch (thrown) {
      throw failed(thrown);
    }
  };
}

async function* observe<T>(
  messages: AsyncIterable<T>,
  succeeded: () => void,
  failed: (thrown: unknown) => ConnectError,
): AsyncGenerator<T> {
  try {
    yield* messages;
  } catch (thrown) {
    throw failed(thrown);
  }
  succeeded();
}
/** Gives each RPC its own EntityManager fork. */
export function createEntityManagerInterceptor(orm: MikroORM): Interceptor {
  return (next) => (req) => {
    req.contextValues.set(entityManagerKey, orm.em.fork());
    return next(req);
  };
}

/** Reads the RPC's EntityManager; a missing one is a wiring bug, not a caller error. */
export function requestEntityManager(ctx: HandlerContext): EntityManager {
  const em = ctx.values.get(entityManagerKey);
  if (!em) throw new Error('entity manager missing from the request context');
  return em;
}

function protocolOf(header: Headers): string {
  const contentType = header.get('content-type') ?? '';
  if (contentType.startsWith('application/grpc-web')) return 'grpc-web';
  if (contentType.startsWith('application/grpc')) return 'grpc';
  return 'connect';
}
