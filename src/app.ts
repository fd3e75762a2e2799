import { setMaxListeners } from 'node:events';
import type { JsonReadOptions, JsonWriteOptions } from '@bufbuild/protobuf';
import { createContextValues, type ConnectRouter } from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { Registry } from 'prom-client';
import { AdminService } from '../gen/switchboard/v1/admin_pb.js';
import { WorkerService } from '../gen/switchboard/v1/worker_pb.js';
import { Health } from '../gen/grpc/health/v1/health_pb.js';
import { ServerReflection as ServerReflectionV1 } from '../gen/grpc/reflection/v1/reflection_pb.js';
import { ServerReflection as ServerReflectionV1alpha } from '../gen/grpc/reflection/v1alpha/reflection_pb.js';
import type { Config } from './config.js';
import { entities } from './entities.js';
import { createAdminServiceHandler } from './admin/admin.handler.js';
import { FleetService } from './fleet/fleet.service.js';
import { ReassignmentHoldService } from './fleet/reassignment-hold.service.js';
import { MaintenanceService } from './fleet/maintenance.service.js';
import { createWorkerServiceHandler } from './fleet/worker-stream.handler.js';
import { systemClock, type Clock } from '../lib/clock.js';
import { systemScheduler, type Scheduler } from '../lib/timers.js';
import type { CoordinationStore } from './platform/coordination/coordination-store.js';
import { MemoryCoordinationStore } from './platform/coordination/memory-store.js';
import { RedisCoordinationStore } from './platform/coordination/redis-store.js';
import { databaseTarget, migrate, openDatabase, type Database } from './platform/db/database.js';
import { createLogger, type Logger } from '../lib/logger.js';
import type { Resources } from './platform/resources.js';
import { originKey, peerKey } from './transport/context.js';
import { createAuthInterceptor, type CredentialVerifier } from './transport/auth.interceptor.js';
import { createValidationInterceptor } from './transport/validation.interceptor.js';
import { createStreamGuardInterceptor } from './transport/stream-guard.interceptor.js';
import { createIdentity, type Identity } from './identity/identity.module.js';
import { createAuthHandler } from './identity/auth.handler.js';
import { createApiKeyHandler } from './identity/api-key.handler.js';
import { createMemberHandler } from './identity/member.handler.js';
import { createAuditHandler } from './audit/audit.handler.js';
import { AuthService } from '../gen/switchboard/v1/auth_pb.js';
import { ApiKeyService } from '../gen/switchboard/v1/api_key_pb.js';
import { MemberService } from '../gen/switchboard/v1/member_pb.js';
import { AuditService } from '../gen/switchboard/v1/audit_pb.js';
import { registerHealth } from './transport/health.handler.js';
import { createEntityManagerInterceptor, createObservabilityInterceptor } from './transport/interceptors.js';
import { listen, type Listeners, type NodeHandlerFn } from './transport/listeners.js';
import { createApiRegistry } from './transport/api-registry.js';
import { registerReflection } from './transport/reflection.handler.js';
import { reportRequestRefusals } from './transport/request-refusals.js';
import { ServiceHealth } from './transport/service-health.js';
import { SessionService as SessionServiceDesc } from '../gen/switchboard/v1/session_pb.js';
import { MessageService as MessageServiceDesc } from '../gen/switchboard/v1/message_pb.js';
import { SandboxService as SandboxServiceDesc } from '../gen/switchboard/v1/sandbox_pb.js';
import { createAuthStateCipher, loadStateKeys } from './sessions/auth-state-cipher.js';
import { SessionService } from './sessions/session.service.js';
import { createMessageHandler, createSandboxHandler, createSessionHandler } from './sessions/session.handlers.js';
import { MessageService } from './messaging/message.service.js';

/** The running control plane, as main() and the tests drive it. */
export interface App {
  readonly config: Config;
  readonly logger: Logger;
  readonly database: Database;
  readonly store: CoordinationStore;
  readonly fleet: FleetService;
  readonly sessions: SessionService;
  readonly identity: Identity;
  /** This process's Prometheus metrics, served at GET /metrics. */
  readonly metrics: Registry;
  /** Binds the ports and starts background work. */
  start(): Promise<{ httpUrl: string; grpcUrl: string; httpPort: number; grpcPort: number }>;
  /** Graceful stop: refuse new work, end agent streams, close connections, database and store. */
  close(): Promise<void>;
}

/** Services this process serves, as their fully-qualified names (health and reflection list them). */
const SERVICES = [
  AuthService,
  ApiKeyService,
  MemberService,
  AuditService,
  AdminService,
  WorkerService,
  SessionServiceDesc,
  MessageServiceDesc,
  SandboxServiceDesc,
  Health,
  ServerReflectionV1,
  ServerReflectionV1alpha,
];

/**
 * The composition root: builds every piece once, in dependency order, and
 * hands each capability the shared resources. Opening the database and the
 * coordination store (and migrating) happens here; listening in start().
 */
/**
 * Replaceable parts, for tests and benchmarks. `authenticator` exists so
 * bench/auth can measure the floor (the same RPCs with credential checks
 * switched off); nothing in production sets it.
 */
export interface AppOverrides {
  logger?: Logger;
  clock?: Clock;
  /** Timers; pass the same ManualScheduler as `clock` to drive both in a test. */
  scheduler?: Scheduler;
  random?: () => number;
  authenticator?: CredentialVerifier;
}

export async function createApp(config: Config, overrides: AppOverrides = {}): Promise<App> {
  const logger =
    overrides.logger ??
    createLogger({ level: config.logLevel, pretty: config.logFormat === 'pretty', name: 'control-plane' });
  const clock = overrides.clock ?? systemClock;
  const scheduler = overrides.scheduler ?? systemScheduler;
  const random = overrides.random ?? Math.random;
  const log = logger.child({ replicaId: config.replicaId });

  const database = await openDatabase(databaseTarget(config), entities, log);
  let store: CoordinationStore;
  try {
    await migrate(database, log);
    store = config.redisUrl
      ? await RedisCoordinationStore.connect({ url: config.redisUrl, keyPrefix: config.redisKeyPrefix, logger: log })
      : new MemoryCoordinationStore(clock);
  } catch (error) {
    await database.close();
    throw error;
  }

  const resources: Resources = { orm: database.orm, store, clock, scheduler, random, logger: log };
  // One registry per app (never prom-client's global one): tests run several apps in one process.
  const metrics = new Registry();
  let identity: Identity;
  try {
    identity = await createIdentity(config, resources);
  } catch (error) {
    // A signing key this replica cannot open stops the start; release what is open.
    await Promise.allSettled([store.close(), database.close()]);
    throw error;
  }
  const fleet = new FleetService(
    resources,
    {
      heartbeatIntervalMs: config.heartbeatIntervalMs,
      leaseTtlMs: config.leaseTtlMs,
      sweepIntervalMs: config.sweepIntervalMs,
      failureGraceMs: config.failureGraceMs,
      maxConnectionAgeMs: config.maxConnectionAgeMs,
      metricsFlushIntervalMs: config.metricsFlushIntervalMs,
      replicaId: config.replicaId,
      sweeperLeadershipTtlMs: config.sweeperLeadershipTtlMs,
      guard: { ...config.massFailure, windowMs: config.leaseTtlMs },
      workerWarningIntervalMs: config.workerWarningIntervalMs,
    },
    { tokens: identity.tokens, joinTokens: identity.joinTokens },
    new ReassignmentHoldService(clock, identity.audit),
    metrics,
  );

  const maintenance = new MaintenanceService(clock, identity.audit);
  const messages = new MessageService(clock, log.child({ component: 'messages' }), config.requestTimeoutMs);
  const sessions = new SessionService(
    resources,
    { quota: config.sessionQuota, requestTimeoutMs: config.requestTimeoutMs, placementIntervalMs: 2000 },
    {
      fleet,
      cipher: createAuthStateCipher(loadStateKeys(config.sessionStateKeys, config.dataDir, log)),
      maintenance,
      messages,
      audit: identity.audit,
    },
  );
  messages.attach(sessions);

  const serviceNames = SERVICES.map((service) => service.typeName);
  const health = new ServiceHealth(serviceNames);
  const registry = createApiRegistry();
  const shutdown = new AbortController();
  // Every in-flight RPC listens for shutdown; thousands at once are normal, not a leak.
  setMaxListeners(0, shutdown.signal);

  const routes = (router: ConnectRouter) => {
    router.service(
      AdminService,
      createAdminServiceHandler({
        fleet,
        joinTokens: identity.joinTokens,
        auth: identity.auth,
        maintenance,
        audit: identity.audit,
      }),
    );
    router.service(
      WorkerService,
      createWorkerServiceHandler(fleet, (workerId, event) => sessions.onWorkerEvent(workerId, event)),
    );
    router.service(SessionServiceDesc, createSessionHandler(sessions));
    router.service(MessageServiceDesc, createMessageHandler(messages));
    router.service(SandboxServiceDesc, createSandboxHandler(sessions));
    router.service(AuthService, createAuthHandler(identity.auth));
    router.service(ApiKeyService, createApiKeyHandler(identity.apiKeys));
    router.service(MemberService, createMemberHandler(identity.members, identity.invitations));
    router.service(AuditService, createAuditHandler(identity.audit));
    registerHealth(router, health);
    registerReflection(router, registry, () => serviceNames);
    reportRequestRefusals(router, log.child({ component: 'rpc' }));
  };

  const ready = async (): Promise<Record<string, string>> => {
    const check = async (probe: () => Promise<void>) => {
      try {
        await withTimeout(probe(), 2000);
        return 'ok';
      } catch (error) {
        return error instanceof Error ? error.message : String(error);
      }
    };
    const [db, coordination] = await Promise.all([check(() => database.ping()), check(() => store.ping())]);
    return {
      database: db,
      coordinationStore: coordination,
      ...(shutdown.signal.aborted ? { server: 'shutting down' } : {}),
    };
  };

  const handler = connectNodeAdapter({
    routes,
    interceptors: [
      createObservabilityInterceptor(log.child({ component: 'rpc' })),
      createAuthInterceptor(overrides.authenticator ?? identity.authenticator, identity.rateLimits),
      createStreamGuardInterceptor(identity.liveAccess, identity.streamLimits),
      createValidationInterceptor(),
      createEntityManagerInterceptor(database.orm),
    ],
    shutdownSignal: shutdown.signal,
    readMaxBytes: config.maxRequestBytes,
    jsonOptions: STRICT_JSON,
    contextValues: (req) =>
      createContextValues()
        .set(peerKey, remoteAddress(req))
        .set(originKey, { ip: req.socket.remoteAddress ?? '', userAgent: String(req.headers['user-agent'] ?? '') }),
    fallback: (req, res) => void serveHttpEndpoints(req, res, ready, () => identity.tokens.jwks(), metrics),
  });

  let listeners: Listeners | undefined;
  let closing: Promise<void> | undefined;

  return {
    config,
    logger: log,
    database,
    store,
    fleet,
    sessions,
    identity,
    metrics,
    async start() {
      if (config.auth.bootstrapAdmin) {
        const { user, created } = await identity.auth.ensurePlatformAdmin(
          database.orm.em.fork(),
          config.auth.bootstrapAdmin,
          { resetExisting: false },
        );
        if (created) log.info({ email: user.email }, 'created platform admin from BOOTSTRAP_ADMIN_EMAIL');
      }
      if (config.auth.bootstrapJoinToken) {
        await identity.joinTokens.ensure(database.orm.em.fork(), config.auth.bootstrapJoinToken, {
          ip: 'config',
          userAgent: 'BOOTSTRAP_JOIN_TOKEN',
        });
      }
      await identity.start();
      listeners = await listen({ host: config.host, httpPort: config.httpPort, grpcPort: config.grpcPort, handler });
      await fleet.start();
      await sessions.start();
      health.setAll('SERVING');
      const host = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
      const urls = {
        httpPort: listeners.httpPort,
        grpcPort: listeners.grpcPort,
        httpUrl: `http://${host}:${listeners.httpPort}`,
        grpcUrl: `http://${host}:${listeners.grpcPort}`,
      };
      log.info({ ...urls, database: database.kind, coordinationStore: store.kind }, 'control plane listening');
      return urls;
    },
    close() {
      closing ??= (async () => {
        log.info('shutting down');
        health.setAll('NOT_SERVING');
        shutdown.abort();
        listeners?.stopAccepting();
        await sessions.stop();
        await fleet.shutdown();
        await listeners?.close(config.shutdownTimeoutMs);
        await identity.stop();
        await Promise.allSettled([store.close(), database.close()]);
        log.info('shut down');
      })();
      return closing;
    },
  };
}

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

type AnyRequest = Parameters<NodeHandlerFn>[0];
type AnyResponse = Parameters<NodeHandlerFn>[1];

function remoteAddress(req: AnyRequest): string {
  const socket = req.socket;
  return socket.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort ?? ''}` : '';
}

/**
 * Plain HTTP endpoints beside the RPCs: /healthz (the process answers),
 * /readyz (the database and coordination store answer too),
 * /.well-known/jwks.json (public keys that verify access tokens) and
 * /metrics (Prometheus text format; counts only, no tenant or worker ids).
 */
async function serveHttpEndpoints(
  req: AnyRequest,
  res: AnyResponse,
  ready: () => Promise<Record<string, string>>,
  jwks: () => unknown,
  metrics: Registry,
) {
  const path = (req.url ?? '').split('?')[0];
  const reply = (status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify(body));
  };
  if (path === '/healthz') return reply(200, { status: 'ok' });
  if (path === '/.well-known/jwks.json') return reply(200, jwks());
  if (path === '/metrics') {
    const text = await metrics.metrics().catch(() => undefined);
    if (text === undefined) return reply(500, { code: 'internal', message: 'could not collect the metrics' });
    res.writeHead(200, { 'content-type': metrics.contentType, 'cache-control': 'no-store' });
    res.end(text);
    return;
  }
  if (path === '/readyz') {
    const checks = await ready();
    const ok = Object.values(checks).every((value) => value === 'ok');
    return reply(ok ? 200 : 503, { status: ok ? 'ok' : 'unavailable', checks });
  }
  return reply(404, { code: 'not_found', message: `no route for ${req.method ?? ''} ${path}` });
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
