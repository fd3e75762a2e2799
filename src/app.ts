import { setMaxListeners } from 'node:events';
import { Registry } from 'prom-client';
import { entities } from './entities.js';
import { systemClock, type Clock } from '../lib/clock.js';
import { createLogger, type Logger } from '../lib/logger.js';
import { systemRandom, type Random } from '../lib/random.js';
import { systemScheduler, type Scheduler } from '../lib/timers.js';
import type { Config } from './config.js';
import { createEvents, type Events } from './events/events.module.js';
import { createFleet, type Fleet } from './fleet/fleet.module.js';
import { createIdentity, type Identity } from './identity/identity.module.js';
import { openGate, type DispatchGate } from './messaging/dispatch-gate.js';
import { createSendGovernor, type SendGovernor } from './messaging/send-governor.gate.js';
import { SendPolicyService } from './messaging/send-policy.service.js';
import { messageToJson } from './messaging/message-mapping.handler.js';
import type { MessageService } from './messaging/message.service.js';
import { createMessaging, type Messaging } from './messaging/messaging.module.js';
import type { CoordinationStore } from './platform/coordination/coordination-store.js';
import { MemoryCoordinationStore } from './platform/coordination/memory-store.js';
import { RedisCoordinationStore } from './platform/coordination/redis-store.js';
import { databaseTarget, migrate, openDatabase, type Database } from './platform/db/database.js';
import { localFilesDir } from './platform/db/local-files.js';
import type { Resources } from './platform/resources.js';
import { createAuthStateCipher, loadStateKeys } from './sessions/auth-state-cipher.js';
import { AuthStates } from './sessions/auth-states.js';
import { sessionEventPayloads } from './sessions/session-event-mapping.handler.js';
import { SessionRequests } from './sessions/session-requests.js';
import { createSessions, type Sessions } from './sessions/sessions.module.js';
import type { CredentialVerifier } from './transport/auth.interceptor.js';
import { createHttpEndpoints, readinessChecks } from './transport/http-endpoints.js';
import { listen, type Listeners, type NodeHandlerFn } from './transport/listeners.js';
import { RefusedRequests } from './transport/refused-requests.js';
import { createRoutes, SERVED_SERVICES } from './transport/routes.js';
import { createRpcHandler } from './transport/rpc-handler.js';
import { ServiceHealth } from './transport/service-health.js';

/** The running control plane, as main() and the tests drive it. */
export interface App {
  readonly config: Config;
  readonly logger: Logger;
  readonly database: Database;
  /** Files kept with this database on this machine (platform/db/local-files.ts). */
  readonly localDir: string;
  /** Time, timers and jitter as the app was built with (the developer setup's supervisor uses them too). */
  readonly clock: Clock;
  readonly scheduler: Scheduler;
  readonly random: Random;
  readonly store: CoordinationStore;
  readonly fleet: Fleet;
  readonly sessions: Sessions;
  readonly identity: Identity;
  /** Sending: the dispatcher and the message service. */
  readonly messaging: Messaging;
  /** This process's Prometheus metrics, served at GET /metrics. */
  readonly metrics: Registry;
  /** Binds the ports and starts background work. */
  start(): Promise<{ httpUrl: string; grpcUrl: string; httpPort: number; grpcPort: number }>;
  /** Graceful stop: refuse new work, end agent streams, close connections, database and store. */
  close(): Promise<void>;
}

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
  random?: Random;
  /**
   * A coordination store the caller opened and closes (the app leaves it
   * open): replicas in one test process share one in-memory store on a fake
   * clock, as real replicas share Redis.
   */
  store?: CoordinationStore;
  authenticator?: CredentialVerifier;
}

/** The capabilities, built and wired together. */
interface Capabilities {
  identity: Identity;
  fleet: Fleet;
  sessions: Sessions;
  messages: MessageService;
  events: Events;
  sendPolicies: SendPolicyService;
  governor: SendGovernor;
  /** What the dispatcher asks before sending: the governor, or everything at once with SEND_GOVERNOR=off. */
  sendGate: DispatchGate;
  messaging: Messaging;
}

/**
 * The composition root: builds every piece once, in dependency order, and
 * hands each capability the shared resources and the ports it calls.
 * Opening the database and the coordination store (and migrating) happens
 * here; listening in start().
 */
export async function createApp(config: Config, overrides: AppOverrides = {}): Promise<App> {
  const resources = await openPlatform(config, overrides);
  const { logger: log, orm, store, database } = resources;
  const metrics = new Registry(); // one per app, never prom-client's global one: tests run several apps per process
  const capabilities = await createCapabilities(config, resources, metrics);
  const { identity, fleet, sessions, messaging } = capabilities;
  const health = new ServiceHealth(SERVED_SERVICES);
  const shutdown = new AbortController();
  // Every in-flight RPC listens for shutdown; thousands at once are normal, not a leak.
  setMaxListeners(0, shutdown.signal);
  const refusals = new RefusedRequests(metrics, {
    clock: resources.clock,
    logger: log.child({ component: 'rpc' }),
    rateLimits: identity.rateLimits,
    logIntervalMs: config.workerWarningIntervalMs,
  });
  const handler = createRpcHandler({
    routes: createRoutes({ ...capabilities, health, refusals }),
    logger: log.child({ component: 'rpc' }),
    authenticator: overrides.authenticator ?? identity.authenticator,
    rateLimits: identity.rateLimits,
    liveAccess: identity.liveAccess,
    streamLimits: identity.streamLimits,
    orm,
    shutdownSignal: shutdown.signal,
    maxRequestBytes: config.maxRequestBytes,
    fallback: createHttpEndpoints({
      ready: readinessChecks({
        probes: { database: () => database.ping(), coordinationStore: () => store.ping() },
        shuttingDown: () => shutdown.signal.aborted,
        scheduler: resources.scheduler,
      }),
      jwks: () => identity.tokens.jwks(),
      metrics,
    }),
  });
  const lifecycle = createLifecycle(config, resources, { ...capabilities, health, handler, shutdown });
  return {
    config,
    logger: log,
    database,
    localDir: resources.localDir,
    clock: resources.clock,
    scheduler: resources.scheduler,
    random: resources.random,
    store,
    fleet,
    sessions,
    identity,
    messaging,
    metrics,
    ...lifecycle,
  };
}

/** The resources bag, with the database it was opened on. */
interface PlatformResources extends Resources {
  database: Database;
  /** Closes the coordination store if this app opened it (not one handed in by the caller). */
  readonly closeStore: () => Promise<void>;
}

/** Logger, time, the database (migrated) and the coordination store. */
async function openPlatform(config: Config, overrides: AppOverrides): Promise<PlatformResources> {
  const logger =
    overrides.logger ??
    createLogger({ level: config.logLevel, pretty: config.logFormat === 'pretty', name: 'control-plane' });
  const clock = overrides.clock ?? systemClock;
  const log = logger.child({ replicaId: config.replicaId });
  const database = await openDatabase(databaseTarget(config), entities, log);
  let store: CoordinationStore;
  let localDir: string;
  try {
    await migrate(database, log);
    localDir = await localFilesDir(database, config.dataDir, log);
    store =
      overrides.store ??
      (config.redisUrl
        ? await RedisCoordinationStore.connect({ url: config.redisUrl, keyPrefix: config.redisKeyPrefix, logger: log })
        : new MemoryCoordinationStore(clock));
  } catch (error) {
    await database.close();
    throw error;
  }
  return {
    orm: database.orm,
    store,
    clock,
    scheduler: overrides.scheduler ?? systemScheduler,
    random: overrides.random ?? systemRandom,
    logger: log,
    database,
    localDir,
    closeStore: () => (overrides.store ? Promise.resolve() : store.close()),
  };
}

/**
 * Identity, then the fleet, messaging and sessions. The fleet and sessions
 * call each other (worker changes and reconnects go to the sessions; the
 * sessions' commands go down the fleet's streams), so the fleet's ports are
 * closures over the sessions, which exist by the time anything calls them.
 */
async function createCapabilities(
  config: Config,
  resources: PlatformResources,
  metrics: Registry,
): Promise<Capabilities> {
  let identity: Identity;
  try {
    identity = await createIdentity(config, resources);
  } catch (error) {
    // A signing key this replica cannot open stops the start; release what is open.
    await Promise.allSettled([resources.closeStore(), resources.database.close()]);
    throw error;
  }
  const { clock, logger } = resources;
  // The send governor (the dispatcher's gate) and the RPCs that tune it.
  const governor = createSendGovernor({ ...resources, plans: config.sendGovernor.plans });
  const sendPolicies = new SendPolicyService(config.sendGovernor.plans, identity.audit, (sessionId) =>
    governor.policyChanged(sessionId),
  );
  const sendGate = config.sendGovernor.enabled ? governor.gate : openGate;
  const authStates = new AuthStates(
    resources.orm,
    createAuthStateCipher(loadStateKeys(config.sessionStateKeys, resources.localDir, logger)),
  );
  const fleet = createFleet(
    config,
    resources,
    { tokens: identity.tokens, joinTokens: identity.joinTokens, audit: identity.audit, metrics },
    {
      loadAuthState: (sessionId) => authStates.open(sessionId),
      onLocalChange: (event) => void sessions.reports.onWorkerChange(event),
      onHello: (workerId, held, helloAt) => {
        void sessions.reports.reconcile(workerId, held, helloAt);
        messaging.dispatcher.workerConnected(workerId);
      },
    },
  );
  const events = createEvents(config, resources);
  const requests = new SessionRequests(fleet.router, clock, config.requestTimeoutMs);
  const messaging = createMessaging(config.messaging, resources, {
    sessions: requests,
    channel: fleet.dispatch,
    events: events.log,
    toJson: messageToJson,
    gate: sendGate,
  });
  const sessions: Sessions = createSessions(config, resources, {
    fleet,
    requests,
    authStates,
    messages: messaging.reports,
    audit: identity.audit,
    eventLog: events.log,
    eventPayloads: sessionEventPayloads,
  });
  return {
    identity,
    fleet,
    sessions,
    messages: messaging.service,
    messaging,
    events,
    sendPolicies,
    governor,
    sendGate,
  };
}

/** start() and close(): the order things come up in and go down in. */
function createLifecycle(
  config: Config,
  resources: PlatformResources,
  parts: Capabilities & { health: ServiceHealth; handler: NodeHandlerFn; shutdown: AbortController },
): Pick<App, 'start' | 'close'> {
  const { identity, fleet, sessions, health } = parts;
  const { logger: log, database, store, closeStore } = resources;
  let listeners: Listeners | undefined;
  let closing: Promise<void> | undefined;
  return {
    async start() {
      await bootstrap(config, resources, identity);
      await identity.start();
      listeners = await listen({
        host: config.host,
        httpPort: config.httpPort,
        grpcPort: config.grpcPort,
        handler: parts.handler,
      });
      await fleet.start();
      await sessions.start();
      parts.events.start();
      await parts.messaging.start();
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
        parts.shutdown.abort();
        listeners?.stopAccepting();
        await parts.events.stop();
        await sessions.stop();
        await parts.messaging.stop();
        await fleet.shutdown();
        await listeners?.close(config.shutdownTimeoutMs);
        await identity.stop();
        await parts.governor.close();
        await Promise.allSettled([closeStore(), database.close()]);
        log.info('shut down');
      })();
      return closing;
    },
  };
}

/** What configuration asks to exist at start: a platform admin, a pre-shared join token. */
async function bootstrap(config: Config, resources: PlatformResources, identity: Identity): Promise<void> {
  const em = () => resources.orm.em.fork();
  if (config.auth.bootstrapAdmin) {
    const { user, created } = await identity.auth.ensurePlatformAdmin(em(), config.auth.bootstrapAdmin, {
      resetExisting: false,
    });
    if (created) resources.logger.info({ email: user.email }, 'created platform admin from BOOTSTRAP_ADMIN_EMAIL');
  }
  if (config.auth.bootstrapJoinToken) {
    await identity.joinTokens.ensure(em(), config.auth.bootstrapJoinToken, {
      ip: 'config',
      userAgent: 'BOOTSTRAP_JOIN_TOKEN',
    });
  }
}
