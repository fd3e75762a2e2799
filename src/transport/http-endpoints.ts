import type { Registry } from 'prom-client';
import type { Scheduler } from '../../lib/timers.js';
import type { NodeHandlerFn } from './listeners.js';

type NodeRequest = Parameters<NodeHandlerFn>[0];
type NodeResponse = Parameters<NodeHandlerFn>[1];

/** What the plain HTTP endpoints read. */
export interface HttpEndpointDependencies {
  /** Each dependency's check: 'ok' or what is wrong. */
  ready: () => Promise<Record<string, string>>;
  /** Public keys that verify access tokens. */
  jwks: () => unknown;
  metrics: Registry;
}

/**
 * Plain HTTP endpoints beside the RPCs: /healthz (the process answers),
 * /readyz (the database and coordination store answer too),
 * /.well-known/jwks.json (public keys that verify access tokens) and
 * /metrics (Prometheus text format; counts only, no tenant or worker ids).
 */
export function createHttpEndpoints(deps: HttpEndpointDependencies): (req: NodeRequest, res: NodeResponse) => void {
  return (req, res) => void serve(req, res, deps);
}

async function serve(req: NodeRequest, res: NodeResponse, deps: HttpEndpointDependencies): Promise<void> {
  const path = (req.url ?? '').split('?')[0];
  const reply = (status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify(body));
  };
  if (path === '/') return reply(200, INDEX);
  if (path === '/healthz') return reply(200, { status: 'ok' });
  if (path === '/.well-known/jwks.json') return reply(200, deps.jwks());
  if (path === '/metrics') {
    const text = await deps.metrics.metrics().catch(() => undefined);
    if (text === undefined) return reply(500, { code: 'internal', message: 'could not collect the metrics' });
    res.writeHead(200, { 'content-type': deps.metrics.contentType, 'cache-control': 'no-store' });
    res.end(text);
    return;
  }
  if (path === '/readyz') {
    const checks = await deps.ready();
    const ok = Object.values(checks).every((value) => value === 'ok');
    return reply(ok ? 200 : 503, { status: ok ? 'ok' : 'unavailable', checks });
  }
  return reply(404, { code: 'not_found', message: `no route for ${req.method ?? ''} ${path}` });
}

/** What `GET /` answers: where things are, for someone who opened the address in a browser. */
const INDEX = {
  service: 'Switchboard control plane',
  api: {
    connect: 'POST /<package>.<Service>/<Method> with JSON (content-type: application/json) or binary protobuf',
    readOnly: 'GET /<package>.<Service>/<Get*|List*>?encoding=json&message=<url-encoded JSON>',
    grpc: 'gRPC and gRPC-Web on this port over HTTP/1.1 where supported; gRPC over HTTP/2 on GRPC_PORT (default 50051)',
    reflection:
      'grpc.reflection.v1 on GRPC_PORT: npx buf curl --http2-prior-knowledge --list-services http://<host>:50051',
    example: 'POST /switchboard.v1.AuthService/Login {"email":"…","password":"…"}',
  },
  endpoints: {
    '/healthz': 'the process answers',
    '/readyz': 'the database and the coordination store answer too',
    '/.well-known/jwks.json': 'public keys that verify access tokens',
    '/metrics': 'Prometheus metrics (counts only)',
  },
  docs: 'README.md and docs/ in the source tree',
};

/**
 * The readiness checks: each probe must answer within two seconds; a
 * replica shutting down is not ready whatever its dependencies say.
 */
export function readinessChecks(deps: {
  probes: Record<string, () => Promise<void>>;
  shuttingDown: () => boolean;
  scheduler: Scheduler;
}): () => Promise<Record<string, string>> {
  const check = async (probe: () => Promise<void>): Promise<string> => {
    try {
      await withTimeout(probe(), 2000, deps.scheduler);
      return 'ok';
    } catch (error) {
      return error instanceof Error ? error.message : String(error);
    }
  };
  return async () => {
    const names = Object.keys(deps.probes);
    const results = await Promise.all(names.map((name) => check(deps.probes[name] as () => Promise<void>)));
    return {
      ...Object.fromEntries(names.map((name, i) => [name, results[i] as string])),
      ...(deps.shuttingDown() ? { server: 'shutting down' } : {}),
    };
  };
}

function withTimeout<T>(promise: Promise<T>, ms: number, scheduler: Scheduler): Promise<T> {
  let timer: { cancel(): void } | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = scheduler.schedule(ms, () => reject(new Error(`no answer within ${ms} ms`)));
    }),
  ]).finally(() => timer?.cancel());
}
