import type { Interceptor } from '@connectrpc/connect';

/** Adds `authorization: Bearer <token>` to every call of a connect-es client. */
export function bearer(token: string): Interceptor {
  return (next) => (req) => {
    req.header.set('authorization', `Bearer ${token}`);
    return next(req);
  };
}
