import type { HandlerContext, Interceptor } from '@connectrpc/connect';
import { authorize } from '../identity/access-control.js';
import { Authenticator } from '../identity/authenticator.js';
import type { LiveAccess, LiveCaller } from '../identity/live-access.js';
import type { Principal } from '../identity/principal.js';
import { RPC_ACCESS } from '../identity/rpc-access.js';
import type { StreamLimits } from '../identity/stream-limits.js';
import type { DomainError } from '../../lib/errors.js';
import { liveCallerKey, originKey, principalKey } from './context.js';
import { requirePrincipal } from './auth.interceptor.js';

/**
 * Runs after authentication on every streaming RPC except the agents' own
 * stream (workers prove themselves inside it and are fenced by leases):
 * takes a slot under the caller's concurrent-stream limits (server
 * reflection under its own per-address cap), then watches
 * the caller for as long as the stream lives. When the caller loses access
 * (revoked key, logout, removal, suspension, a role without the RPC's
 * permission, an expired credential) or the stream reaches its maximum
 * lifetime, the handler's signal is aborted and the stream ends with the
 * refusal; no message the handler produced after that leaves the server.
 */
export function createStreamGuardInterceptor(liveAccess: LiveAccess, limits: StreamLimits): Interceptor {
  return (next) => async (req) => {
    if (!req.stream) return next(req);
    const rpc = `${req.service.typeName}/${req.method.name}`;
    const access = RPC_ACCESS[rpc];
    if (access?.kind === 'worker') return next(req);
    const principal = req.contextValues.get(principalKey);
    const slot = await limits.acquire({
      principal,
      ip: req.contextValues.get(originKey).ip,
      reflection: req.service.typeName.startsWith('grpc.reflection.'),
    });
    let caller: LiveCaller | undefined;
    const abort = new AbortController();
    try {
      if (principal) {
        const credential = Authenticator.credentialFrom(req.header) ?? '';
        caller = liveAccess.watch({ credential, principal, authorize: (p: Principal) => authorize(access, p) });
        caller.onEnd((error) => abort.abort(error));
        req.contextValues.set(liveCallerKey, caller);
      }
      // The handler sees the call end as an aborted signal and stops its own work (subscriptions, queues).
      const res = await next({ ...req, signal: AbortSignal.any([req.signal, abort.signal]) });
      if (!res.stream) {
        end();
        return res;
      }
      return { ...res, message: guarded(res.message, caller, () => end()) };
    } catch (error) {
      end();
      throw error;
    }
    function end(): void {
      caller?.close();
      slot.release();
      abort.abort();
    }
  };
}

/**
 * Passes the handler's messages on until the caller loses access. Before
 * each message it waits for any re-check in flight, so a message produced
 * after an invalidation reached this replica is held until the verdict and
 * dropped if the caller lost access.
 */
async function* guarded<T>(
  messages: AsyncIterable<T>,
  caller: LiveCaller | undefined,
  finish: () => void,
): AsyncGenerator<T> {
  const iterator = messages[Symbol.asyncIterator]();
  // Set from the caller's end listener, which may run while this generator waits.
  const state: { ended?: DomainError; interrupt?: (error: DomainError) => void } = {};
  caller?.onEnd((error) => {
    state.ended = error;
    state.interrupt?.(error);
  });
  const throwIfEnded = (): void => {
    if (state.ended) throw state.ended;
  };
  try {
    for (;;) {
      throwIfEnded();
      const next = await new Promise<IteratorResult<T>>((resolve, reject) => {
        state.interrupt = reject;
        iterator.next().then(resolve, reject);
      });
      state.interrupt = undefined;
      if (next.done) return;
      await caller?.settled();
      throwIfEnded();
      yield next.value;
    }
  } finally {
    finish();
    // Not awaited: a handler parked on an await finishes once its (now aborted) signal wakes it.
    iterator.return?.().catch(() => undefined);
  }
}

/**
 * The caller of a streaming RPC once every re-check this replica has heard
 * of is done (so a role change already received shows); for unary RPCs, the
 * caller as authenticated.
 */
export async function currentPrincipal(ctx: HandlerContext): Promise<Principal> {
  const caller = ctx.values.get(liveCallerKey);
  if (!caller) return requirePrincipal(ctx);
  await caller.settled();
  return caller.current();
}
