import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import pg from 'pg';
import { createBenchDatabase, deleteRedisKeys } from '../streams/backing-services.js';
import { BenchChild } from '../streams/bench-child.js';
import type { ServerCommand, ServerEvent } from '../streams/ipc.js';
import { guarded } from '../streams/run-control.js';

const READY_TIMEOUT_MS = 60_000;
const STOP_GRACE_MS = 20_000;

/** What a bench needs to reach the control plane it started, and to stop it. */
export interface ControlPlaneRun {
  /** Connect (HTTP/1.1) base URL. */
  httpUrl: string;
  /** h2c base URL: gRPC and Connect over HTTP/2. */
  grpcUrl: string;
  /** host:port of the gRPC listener, for agents. */
  grpcAddress: string;
  /** The BOOTSTRAP_JOIN_TOKEN every agent enrols with. */
  joinToken: string;
  /** The BOOTSTRAP_ADMIN_* platform admin. */
  admin: { email: string; password: string };
  pid: number;
  logFile: string;
  /** The PostgreSQL backends (pids) connected to the run's database now, for CPU accounting. */
  databaseBackends(): Promise<number[]>;
  /**
   * Transactions committed in the run's database so far (pg_stat_database;
   * backends publish their counts about once a second, so take differences
   * over many seconds).
   */
  databaseCommits(): Promise<number>;
  /** Rejects when the control plane fails or exits before stop(); never resolves. */
  failed: Promise<never>;
  /** Stops the process, drops the database and deletes the Redis keys; safe to call twice. */
  stop(): Promise<void>;
}

/**
 * Starts the production control plane (bench/streams/control-plane.server.ts:
 * createApp + start) in a child process on a throwaway PostgreSQL database
 * and a fresh Redis key prefix, seeded like a fresh deployment: a bootstrap
 * admin and join token, random per run. `env` adds to or overrides the
 * environment (quotas, rate limits, timing).
 */
export async function startControlPlaneRun(options: {
  postgresUrl: string;
  redisUrl: string;
  workDir: string;
  env: Record<string, string>;
  progress: (message: string) => void;
  /** Extra Node flags, e.g. --cpu-prof. */
  nodeArgs?: string[];
}): Promise<ControlPlaneRun> {
  const runId = randomBytes(4).toString('hex');
  const database = await guarded(createBenchDatabase(options.postgresUrl, `sb_bench_${runId}`));
  const keyPrefix = `sb-bench-${runId}:`;
  const admin = { email: `bench-${runId}@bench.local`, password: randomBytes(18).toString('base64url') };
  // The format BOOTSTRAP_JOIN_TOKEN requires: sbj_<16 lowercase alphanumerics>_<43 base64url>.
  const joinToken = `sbj_${randomBytes(8).toString('hex')}_${randomBytes(32).toString('base64url')}`;
  let child: BenchChild<ServerCommand, ServerEvent> | undefined;
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      try {
        const code = await child?.stop(STOP_GRACE_MS, { type: 'stop' });
        if (code !== undefined && code !== 0)
          options.progress(`control plane exited with code ${code}; see ${child?.logFile}`);
      } finally {
        await database.drop();
        const deleted = await deleteRedisKeys(options.redisUrl, keyPrefix);
        options.progress(`dropped database ${database.name}; deleted ${deleted} Redis keys under ${keyPrefix}`);
      }
    })());
  try {
    child = BenchChild.spawn<ServerCommand, ServerEvent>({
      name: 'control plane',
      entry: './control-plane.server.ts',
      env: {
        ...process.env,
        DATABASE_URL: database.url,
        REDIS_URL: options.redisUrl,
        REDIS_KEY_PREFIX: keyPrefix,
        HOST: '127.0.0.1',
        HTTP_PORT: '0',
        GRPC_PORT: '0',
        LOG_LEVEL: 'info',
        LOG_FORMAT: 'json',
        REPLICA_ID: `bench-${runId}`,
        BOOTSTRAP_ADMIN_EMAIL: admin.email,
        BOOTSTRAP_ADMIN_PASSWORD: admin.password,
        BOOTSTRAP_JOIN_TOKEN: joinToken,
        ...options.env,
      },
      logFile: join(options.workDir, `control-plane-${runId}.log`),
      nodeArgs: options.nodeArgs,
    });
    const ready = await guarded(child.next('ready', READY_TIMEOUT_MS));
    if (!ready.httpUrl) throw new Error('control plane reported no HTTP listener');
    return {
      httpUrl: ready.httpUrl,
      grpcUrl: ready.grpcUrl,
      grpcAddress: new URL(ready.grpcUrl).host,
      joinToken,
      admin,
      pid: child.pid,
      logFile: child.logFile,
      failed: child.failed,
      databaseBackends: () => backendsOf(options.postgresUrl, database.name),
      databaseCommits: () => commitsOf(options.postgresUrl, database.name),
      stop,
    };
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }
}

async function backendsOf(adminUrl: string, database: string): Promise<number[]> {
  const rows = await adminQuery<{ pid: number }>(adminUrl, 'select pid from pg_stat_activity where datname = $1', [
    database,
  ]);
  return rows.map((row) => row.pid);
}

async function commitsOf(adminUrl: string, database: string): Promise<number> {
  const [row] = await adminQuery<{ commits: string }>(
    adminUrl,
    'select xact_commit as commits from pg_stat_database where datname = $1',
    [database],
  );
  return Number(row?.commits ?? NaN);
}

async function adminQuery<Row extends pg.QueryResultRow>(adminUrl: string, text: string, values: unknown[]) {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    return (await client.query<Row>(text, values)).rows;
  } finally {
    await client.end();
  }
}
