import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { createBackingServices, type BackingServices } from './backing-services.js';
import { BenchChild } from './child.js';
import { guarded } from './interrupt.js';
import type { ServerCommand, ServerEvent } from './ipc.js';
import type { BenchRun } from './run.js';

const READY_TIMEOUT_MS = 60_000;
const STOP_GRACE_MS = 20_000;

/**
 * Throwaway credentials a run's control plane is seeded with, the supported
 * way to seed a fresh deployment: a platform admin (to watch and list
 * workers) and a join token (for the agents' Hello). They die with the run's
 * database.
 */
export interface ControlPlaneSeed {
  admin: { email: string; password: string };
  /** The BOOTSTRAP_JOIN_TOKEN every agent enrols with. */
  joinToken: string;
  /** Listening on 127.0.0.1 (any free ports), JSON logs, and the BOOTSTRAP_* variables. */
  env: Record<string, string>;
}

export function seedControlPlane(runId: string): ControlPlaneSeed {
  const admin = { email: `bench-${runId}@bench.local`, password: randomBytes(18).toString('base64url') };
  // The format BOOTSTRAP_JOIN_TOKEN requires: sbj_<16 lowercase alphanumerics>_<43 base64url>.
  const joinToken = `sbj_${randomBytes(8).toString('hex')}_${randomBytes(32).toString('base64url')}`;
  return {
    admin,
    joinToken,
    env: {
      HOST: '127.0.0.1',
      HTTP_PORT: '0',
      GRPC_PORT: '0',
      LOG_LEVEL: 'info',
      LOG_FORMAT: 'json',
      REPLICA_ID: `bench-${runId}`,
      BOOTSTRAP_ADMIN_EMAIL: admin.email,
      BOOTSTRAP_ADMIN_PASSWORD: admin.password,
      BOOTSTRAP_JOIN_TOKEN: joinToken,
    },
  };
}

/** A control-plane process a bench started, and how to reach it. */
export interface ControlPlane {
  /** Connect (HTTP/1.1) base URL. */
  httpUrl: string;
  /** h2c base URL: gRPC and Connect over HTTP/2. */
  grpcUrl: string;
  /** host:port of the gRPC listener, for agents. */
  grpcAddress: string;
  pid: number;
  logFile: string;
  /** The whole environment it runs with (e.g. for loadConfig, to say what timing it has). */
  env: NodeJS.ProcessEnv;
  /** Rejects when the control plane fails or exits before stop(); never resolves. */
  failed: Promise<never>;
  /** Asks it to stop, kills it after a grace; resolves with its exit code. */
  stop(): Promise<number | null>;
}

/**
 * Starts a control plane in a child process (by default the production one,
 * control-plane.server.ts: createApp + start) and waits until it listens.
 * `env` goes over the bench's own environment.
 */
export async function startControlPlane(options: {
  env: Record<string, string>;
  logFile: string;
  entry?: URL;
  name?: string;
  /** Extra Node flags, e.g. --cpu-prof. */
  nodeArgs?: string[];
}): Promise<ControlPlane> {
  const env = { ...process.env, ...options.env };
  const child = BenchChild.spawn<ServerCommand, ServerEvent>({
    name: options.name ?? 'control plane',
    entry: options.entry ?? new URL('./control-plane.server.ts', import.meta.url),
    env,
    logFile: options.logFile,
    nodeArgs: options.nodeArgs,
  });
  try {
    const ready = await guarded(child.next('ready', READY_TIMEOUT_MS));
    if (!ready.httpUrl) throw new Error(`${child.name} reported no HTTP listener`);
    return {
      httpUrl: ready.httpUrl,
      grpcUrl: ready.grpcUrl,
      grpcAddress: new URL(ready.grpcUrl).host,
      pid: child.pid,
      logFile: child.logFile,
      env,
      failed: child.failed,
      stop: () => child.stop(STOP_GRACE_MS, { type: 'stop' }),
    };
  } catch (error) {
    await child.stop(STOP_GRACE_MS, { type: 'stop' });
    throw error;
  }
}

/** The production control plane on its own database and key prefix, seeded: what most benches measure. */
export interface ControlPlaneRun
  extends Omit<ControlPlane, 'stop'>, Pick<BackingServices, 'databaseBackends' | 'databaseCommits'> {
  joinToken: string;
  /** The BOOTSTRAP_ADMIN_* platform admin. */
  admin: { email: string; password: string };
  /** Stops the process, drops the database and deletes the Redis keys; safe to call twice. */
  stop(): Promise<void>;
}

/**
 * Rate limits far above what a run sends: the limiter still runs (a Redis
 * call per request) but never refuses.
 */
export const UNREACHABLE_RATE_LIMITS = {
  RATE_LIMIT_FREE_PER_MINUTE: '10000000',
  RATE_LIMIT_ANONYMOUS_PER_MINUTE: '10000000',
};

/**
 * Starts the production control plane on a throwaway PostgreSQL database and
 * a fresh Redis key prefix, seeded like a fresh deployment (seedControlPlane),
 * profiled when the run profiles, and stopped (database dropped, keys
 * deleted) when the run ends. `env` adds to or overrides the environment
 * (quotas, rate limits, timing).
 */
export async function startControlPlaneRun(
  run: BenchRun,
  services: { postgresUrl: string; redisUrl: string },
  env: Record<string, string> = {},
): Promise<ControlPlaneRun> {
  const { progress } = run;
  const backing = await guarded(createBackingServices({ ...services, runId: run.runId, progress }));
  const seed = seedControlPlane(run.runId);
  let controlPlane: ControlPlane | undefined = undefined;
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      try {
        const code = await controlPlane?.stop();
        if (code !== undefined && code !== 0)
          progress(`control plane exited with code ${code}; see ${controlPlane?.logFile}`);
      } finally {
        await backing.dispose();
      }
    })());
  run.defer(stop);
  controlPlane = await startControlPlane({
    env: { ...backing.env, ...seed.env, ...env },
    logFile: join(run.workDir, `control-plane-${run.runId}.log`),
    nodeArgs: run.profileArgs('control-plane'),
  });
  progress(`control plane listening on ${controlPlane.grpcUrl} (gRPC) and ${controlPlane.httpUrl} (HTTP)`);
  return {
    ...controlPlane,
    joinToken: seed.joinToken,
    admin: seed.admin,
    databaseBackends: backing.databaseBackends,
    databaseCommits: backing.databaseCommits,
    stop,
  };
}
