import { randomBytes, randomUUID } from 'node:crypto';
import type { ServiceImpl } from '@connectrpc/connect';
import type { EntityManager } from '@mikro-orm/postgresql';
import type { WorkerService } from '../../gen/switchboard/v1/worker_pb.js';
import { createLogger, type Logger } from '../../lib/logger.js';
import { seededRandom, type Random } from '../../lib/random.js';
import { ManualScheduler, type Scheduler, type Timer } from '../../lib/timers.js';
import { createApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import type { HeldSession } from '../../src/fleet/fleet.types.js';
import { WorkerEvent } from '../../src/fleet/worker-event.entity.js';
import { createWorkerServiceHandler } from '../../src/fleet/worker-stream.handler.js';
import { Worker } from '../../src/fleet/worker.entity.js';
import type { CoordinationStore } from '../../src/platform/coordination/coordination-store.js';
import { MemoryCoordinationStore } from '../../src/platform/coordination/memory-store.js';
import { Session } from '../../src/sessions/session.entity.js';
import { login } from './control-plane.js';
import { FakeAgent, type AgentIdentity } from './fake-agent.js';
import { createTestDatabase, TEST_DATA_DIR, type TestDatabase } from './services.js';

/** The pre-shared join token every harness replica accepts (BOOTSTRAP_JOIN_TOKEN). */
export const HARNESS_JOIN_TOKEN = 'sbj_0123456789abcdef_harnessharnessharnessharnessharnessharnessh';

/** Real time allowed for the work one step of fake time started (database writes) to finish. */
const SETTLE_LIMIT_MS = 15_000;
/** Event-loop turns in a row without database work before the work counts as finished. */
const QUIET_TURNS = 3;

/** How a harness is built. */
export interface FleetHarnessOptions {
  /** Configuration on top of the production defaults: the timing under test. */
  env?: Record<string, string>;
  /** Replicas to start, sharing the database and the coordination store (default one, `replica-a`). */
  replicas?: string[];
  /** Jitter; default a seeded sequence, so runs repeat. Tests pinning a jitter set `harness.random`. */
  random?: Random;
  /** A replica's logger (a test reading what it logged); default silent. */
  logger?: (replicaId: string) => Logger;
}

/** The knex (tarn) pool under MikroORM: what the harness watches to know database work is in flight. */
interface ConnectionPool {
  numUsed(): number;
  numPendingAcquires(): number;
  numPendingCreates(): number;
}

/**
 * The control plane on a fake clock, in the manner of Nomad's in-memory
 * scheduler harness (scheduler/tests/testing.go): real services on a fresh
 * real PostgreSQL database, one in-memory coordination store whose leases
 * run on the same fake clock, agents driven by the test (FakeAgent), and
 * time that moves only when the test says so. advance() moves it one due
 * timer at a time and lets the work each timer started (database writes)
 * finish before moving on, so a rule like "FAILED once the grace is over"
 * is checked to the millisecond, in milliseconds of real time, and never
 * by sleeping.
 */
export class FleetHarness {
  readonly time: ManualScheduler;
  readonly store: MemoryCoordinationStore;
  readonly replicas: HarnessReplica[] = [];
  /** Where jitter comes from now; replace it to pin a jittered delay. */
  random: Random;
  private adminTokenPromise: Promise<string> | undefined;

  private constructor(
    readonly database: TestDatabase,
    private readonly options: FleetHarnessOptions,
  ) {
    this.time = new ManualScheduler(new Date());
    this.store = new MemoryCoordinationStore(this.time);
    this.random = options.random ?? seededRandom(20_261_201);
  }

  /** A fresh database and the replicas, started (timers armed at fake time zero). */
  static async create(options: FleetHarnessOptions = {}): Promise<FleetHarness> {
    const harness = new FleetHarness(await createTestDatabase(), options);
    try {
      for (const id of options.replicas ?? ['replica-a']) await harness.startReplica(id);
    } catch (error) {
      await harness.close();
      throw error;
    }
    return harness;
  }

  /** The first replica (the only one unless asked for more). */
  get replica(): HarnessReplica {
    const first = this.replicas[0];
    if (!first) throw new Error('the harness has no replica');
    return first;
  }

  /** Starts one more replica on the shared database and store. */
  async startReplica(id: string): Promise<HarnessReplica> {
    const replica = new HarnessReplica(this, id);
    const config = loadConfig({
      HOST: '127.0.0.1',
      HTTP_PORT: '0',
      GRPC_PORT: '0',
      LOG_LEVEL: 'silent',
      DATABASE_URL: this.database.url,
      DATA_DIR: TEST_DATA_DIR,
      DATABASE_POOL_MAX: '5',
      REPLICA_ID: id,
      BOOTSTRAP_JOIN_TOKEN: HARNESS_JOIN_TOKEN,
      ...this.options.env,
    });
    const app = await createApp(config, {
      logger: this.options.logger?.(id) ?? createLogger({ level: 'silent', pretty: false }),
      clock: this.time,
      scheduler: replica.scheduler,
      random: () => this.random(),
      store: replica.gate(this.store),
    });
    replica.attach(app);
    this.replicas.push(replica);
    const urls = await app.start();
    replica.httpUrl = `http://127.0.0.1:${urls.httpPort}`;
    await this.settle();
    return replica;
  }

  /** Milliseconds of fake time since the harness started. */
  get nowMs(): number {
    return this.time.monotonicMs();
  }

  /**
   * Moves fake time forward by `ms`, one due timer at a time: each timer
   * runs at its due time, and the work it started finishes before time
   * moves on, as in a system whose I/O is fast next to its timers.
   */
  async advance(ms: number): Promise<void> {
    await this.advanceTo(this.time.monotonicMs() + ms);
  }

  /** Moves fake time forward to `targetMs` (milliseconds since the harness started). */
  async advanceTo(targetMs: number): Promise<void> {
    for (let steps = 0; ; steps += 1) {
      if (steps > 1_000_000) throw new Error('timers keep falling due: a timer that reschedules itself at once?');
      const next = this.time.msUntilNext();
      if (next === undefined || this.time.monotonicMs() + next > targetMs) break;
      this.time.advance(next);
      await this.settle();
    }
    this.time.advance(Math.max(0, targetMs - this.time.monotonicMs()));
    await this.settle();
  }

  /**
   * Waits, in real time, until no replica has database work in flight for
   * a few event-loop turns: the writes a timer or a message started are
   * done. Not a timing rule: fake time does not move while it waits. Work
   * that waits on something else (token signing in the thread pool, an
   * HTTP call) is not seen here; the test awaits that itself, as connect()
   * awaits the Welcome.
   */
  async settle(): Promise<void> {
    const started = performance.now();
    let quiet = 0;
    while (quiet < QUIET_TURNS) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      quiet = this.replicas.some((replica) => replica.busy()) ? 0 : quiet + 1;
      if (performance.now() - started > SETTLE_LIMIT_MS) {
        throw new Error(`database work still in flight after ${SETTLE_LIMIT_MS} ms of real time`);
      }
    }
  }

  /** A fresh entity manager on the shared database. */
  em(): EntityManager {
    return this.replica.app.database.orm.em.fork();
  }

  async worker(id: string): Promise<Worker> {
    return this.em().findOneOrFail(Worker, { id }, { disableIdentityMap: true });
  }

  /** The worker's events, oldest first. */
  async events(workerId: string): Promise<WorkerEvent[]> {
    return this.em().find(WorkerEvent, { workerId }, { orderBy: { occurredAt: 'asc' } });
  }

  async session(id: string): Promise<Session> {
    return this.em().findOneOrFail(Session, { id }, { disableIdentityMap: true });
  }

  /** A platform admin's access token for the replicas' HTTP API (made once). */
  adminToken(): Promise<string> {
    this.adminTokenPromise ??= (async () => {
      const admin = { email: `admin-${randomBytes(4).toString('hex')}@test.local`, password: 'correct-horse-battery' };
      await this.replica.app.identity.auth.ensurePlatformAdmin(this.em(), admin);
      return login(this.replica.httpUrl, admin.email, admin.password);
    })();
    return this.adminTokenPromise;
  }

  /** Stops every replica (stopped and killed ones too), then drops the database. */
  async close(): Promise<void> {
    for (const replica of this.replicas) replica.release();
    for (const replica of [...this.replicas].reverse()) await replica.app.close();
    await this.store.close();
    await this.database.drop();
  }
}

/**
 * One control-plane replica in the harness. Like a process, it can be
 * stopped (SIGSTOP: its timers and the answers of its coordination-store
 * calls wait until cont()) or killed (SIGKILL: nothing of it runs again;
 * its leases run out).
 */
export class HarnessReplica {
  httpUrl = '';
  private appRef: App | undefined;
  private handlerRef: ServiceImpl<typeof WorkerService> | undefined;
  private stopped: { resumed: Promise<void>; resume: () => void } | undefined;
  private killed = false;
  private deferred: (() => void)[] = [];
  private stopAfter: { method: string; stopped: () => void } | undefined;

  constructor(
    readonly harness: FleetHarness,
    readonly id: string,
  ) {}

  get app(): App {
    if (!this.appRef) throw new Error(`replica ${this.id} is not started`);
    return this.appRef;
  }

  /** WorkerService.Connect as routes.ts serves it, fed in-process by FakeAgents. */
  get handler(): ServiceImpl<typeof WorkerService> {
    if (!this.handlerRef) throw new Error(`replica ${this.id} is not started`);
    return this.handlerRef;
  }

  attach(app: App): void {
    this.appRef = app;
    this.handlerRef = createWorkerServiceHandler({
      fleet: app.fleet.service,
      router: app.fleet.router,
      refusals: app.fleet.refusals,
      onSessionEvent: (workerId, event) => app.sessions.reports.onWorkerEvent(workerId, event),
      onMessageEvents: (workerId, events) => app.sessions.reports.onMessageEvents(workerId, events),
    });
  }

  /** This replica's timers: the harness's fake clock, held while the replica is stopped. */
  readonly scheduler: Scheduler = {
    schedule: (delayMs, task): Timer => {
      let cancelled = false;
      const timer = this.harness.time.schedule(delayMs, () => {
        if (cancelled || this.killed) return;
        if (this.stopped) this.deferred.push(() => !cancelled && task());
        else task();
      });
      return {
        cancel: () => {
          cancelled = true;
          timer.cancel();
        },
      };
    },
  };

  /** The shared store as this replica reaches it: calls (and messages to it) wait while it is stopped. */
  gate(store: CoordinationStore): CoordinationStore {
    const pass = async () => {
      while (this.stopped) await this.stopped.resumed;
    };
    return new Proxy(store, {
      get: (target, property, receiver) => {
        const value: unknown = Reflect.get(target, property, receiver);
        if (typeof value !== 'function') return value;
        const method = value as (...args: unknown[]) => unknown;
        if (property === 'subscribe') {
          return (channel: string, onMessage: (message: string) => void) =>
            target.subscribe(channel, (message) => void pass().then(() => onMessage(message)));
        }
        return async (...args: unknown[]) => {
          await pass();
          const result: unknown = await method.apply(target, args);
          if (this.stopAfter?.method === property) {
            const { stopped } = this.stopAfter;
            this.stopAfter = undefined;
            this.stop();
            stopped();
          }
          await pass();
          return result;
        };
      },
    });
  }

  /** Connects a new agent (or an agent again, with its identity) and waits for its Welcome; it heartbeats on its own. */
  async connect(
    agent: string | AgentIdentity,
    options: {
      beat?: boolean;
      held?: HeldSession[];
      labels?: Record<string, string>;
      capacity?: number;
      /** Enrol with this join token instead of the harness's pre-shared one. */
      joinToken?: string;
    } = {},
  ): Promise<FakeAgent> {
    const identity: AgentIdentity =
      typeof agent === 'string'
        ? {
            name: agent,
            instanceId: randomUUID(),
            labels: options.labels ?? { zone: 'harness' },
            capacity: options.capacity ?? 10,
            workerId: '',
            credential: '',
          }
        : agent;
    const connection = new FakeAgent(this.handler, identity, this.harness.time);
    connection.hello(options.joinToken ?? HARNESS_JOIN_TOKEN, options.held);
    const welcome = await connection.welcomed();
    const intervalMs =
      Number(welcome.heartbeatInterval?.seconds ?? 0n) * 1000 + (welcome.heartbeatInterval?.nanos ?? 0) / 1e6;
    if (options.beat !== false) connection.beatEvery(intervalMs);
    await this.harness.settle();
    return connection;
  }

  /** SIGSTOP: from now on this replica's timers and the answers of its store calls wait for cont(). */
  stop(): void {
    if (this.stopped) return;
    let resume = () => {};
    const resumed = new Promise<void>((resolve) => (resume = resolve));
    this.stopped = { resumed, resume };
  }

  /**
   * Stops the replica right after its next call of `method` on the
   * coordination store returns (before it sees the answer): a process
   * paused at the worst moment, e.g. just after renewing its leadership.
   * Resolves once it is stopped.
   */
  stopAfterNext(method: keyof CoordinationStore): Promise<void> {
    return new Promise((stopped) => (this.stopAfter = { method, stopped }));
  }

  /** SIGCONT: timers that fell due while stopped run now, held answers are delivered. */
  cont(): void {
    if (this.killed) throw new Error(`replica ${this.id} was killed`);
    const stopped = this.stopped;
    this.stopped = undefined;
    stopped?.resume();
    const due = this.deferred;
    this.deferred = [];
    for (const task of due) task();
  }

  /** SIGKILL: nothing of this replica runs again; its leases run out. */
  kill(): void {
    this.killed = true;
    this.stop();
  }

  get isStopped(): boolean {
    return this.stopped !== undefined;
  }

  /** Lets a stopped or killed replica go again, so the harness can close it. */
  release(): void {
    this.killed = false;
    this.deferred = [];
    const stopped = this.stopped;
    this.stopped = undefined;
    stopped?.resume();
  }

  /** Database work in flight on this replica (a stopped replica's counts as done: it is frozen). */
  busy(): boolean {
    if (!this.appRef || this.stopped) return false;
    const client = this.appRef.database.orm.em.getConnection().getKnex().client as { pool?: ConnectionPool };
    const pool = client.pool;
    if (!pool) return false;
    return pool.numUsed() + pool.numPendingAcquires() + pool.numPendingCreates() > 0;
  }
}
