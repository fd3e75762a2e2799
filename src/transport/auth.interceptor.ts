import type { HandlerContext, Interceptor } from '@connectrpc/connect';
import { authorize } from '../identity/access-control.js';
import { Authenticator } from '../identity/authenticator.js';
import { principalSubject, type Principal } from '../identity/principal.js';
import type { RateLimits, RateLimitState } from '../identity/rate-limits.js';
import { RPC_ACCESS } from '../identity/rpc-access.js';
import { DomainError } from '../../lib/errors.js';
import { originKey, principalKey } from './context.js';

/**
 * Authentication, authorization (the RPC_ACCESS table, deny by default) and
 * rate limiting for every RPC, on every protocol.
 */
/** Turns a presented credential into a principal (the Authenticator, or a stand-in in benchmarks). */
export interface CredentialVerifier {
  authenticate(credential: string): Promise<Principal>;
}

export function createAuthInterceptor(authenticator: CredentialVerifier, rateLimits: RateLimits): Interceptor {
  return (next) => async (req) => {
    const rpc = `${req.service.typeName}/${req.method.name}`;
    const access = RPC_ACCESS[rpc];
    const origin = req.contextValues.get(originKey);
    let principal: Principal | undefined;
    if (access && access.kind !== 'public' && access.kind !== 'worker') {
      const credential = Authenticator.credentialFrom(req.header);
      if (credential) {
        try {
          principal = await authenticator.authenticate(credential);
        } catch (refusal) {
          // Failed credentials count against the caller's IP, so guessing keys or tokens is rate-limited too.
          await rateLimits.consume(`ip:${origin.ip}`, 'anonymous');
          throw refusal;
        }
      }
    }
    authorize(access, principal);
    req.contextValues.set(principalKey, principal);

    let limit: RateLimitState | undefined;
    if (principal) {
      const tier = principal.kind === 'user' && principal.platformAdmin ? 'enterprise' : principal.plan;
      limit = await rateLimits.consume(principalSubject(principal), tier);
    } else if (access?.kind === 'public' && !req.service.typeName.startsWith('grpc.')) {
      // Health and reflection are exempt: probes and tooling poll them.
      limit = await rateLimits.consume(`ip:${origin.ip}`, 'anonymous');
    }
    const res = await next(req);
    if (limit) {
      res.header.set('ratelimit-limit', String(limit.limit));
      res.header.set('ratelimit-remaining', String(limit.remaining));
      res.header.set('ratelimit-reset', String(limit.resetSeconds));
    }
    return res;
  };
}

/** The caller of an RPC that requires one; a missing principal is a wiring bug. */
export function requirePrincipal(ctx: HandlerContext): Principal {
  const principal = ctx.values.get(principalKey);
  if (!principal) throw new DomainError('UNAUTHENTICATED', 'credentials required');
  return principal;
}
