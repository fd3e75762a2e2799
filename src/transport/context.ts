import { createContextKey } from '@connectrpc/connect';
import type { EntityManager } from '@mikro-orm/postgresql';
import type { LiveCaller } from '../identity/live-access.js';
import type { Principal, RequestOrigin } from '../identity/principal.js';

/** Correlates every log line of one RPC; taken from `x-request-id` or generated. */
export const requestIdKey = createContextKey<string>('', { description: 'request id' });

/** The caller's network address, for logs and (later) per-IP limits. */
export const peerKey = createContextKey<string>('', { description: 'peer address' });

/** The RPC's own EntityManager fork, so no identity map is shared between requests. */
export const entityManagerKey = createContextKey<EntityManager | undefined>(undefined, {
  description: 'request-scoped entity manager',
});

/** Who is calling; set by the auth interceptor for every RPC that needs a credential. */
export const principalKey = createContextKey<Principal | undefined>(undefined, { description: 'principal' });

/** Caller IP and user agent, for the audit log and per-IP limits. */
export const originKey = createContextKey<RequestOrigin>({ ip: '', userAgent: '' }, { description: 'request origin' });

/** For streams: the caller as re-checked while the stream lives (a role change shows here). */
export const liveCallerKey = createContextKey<LiveCaller | undefined>(undefined, { description: 'live caller' });

/**
 * Whether the client has closed the call (cancelled it, or its connection
 * went away) — set per request from the Node request, so the logs can tell a
 * client hanging up from a failure of ours.
 */
export const clientGoneKey = createContextKey<() => boolean>(() => false, { description: 'client closed the call' });
