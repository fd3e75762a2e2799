import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { AdminService } from '../../gen/switchboard/v1/admin_pb.js';
import { AuthService } from '../../gen/switchboard/v1/auth_pb.js';
import { WorkerStatus } from '../../gen/switchboard/v1/fleet_pb.js';
import { createBenchDatabase, deleteRedisKeys } from './backing-services.js';
import { BenchOptionsError, loadBenchOptions, USAGE, type BenchOptions } from './bench.options.js';
import { cpuPercent, readMachineBusySeconds } from './proc-stats.js';
import { formatReport } from './report.js';
import { guarded, progress } from './run-control.js';
import { HEARTBEAT_INTERVAL_MS, measure } from './server-measurement.js';

/**
 * bench/streams: what one control-plane process pays to hold agent streams.
 *
 * N simulated agents (one process, one HTTP/2 connection each) hold a
 * WorkerService.Connect stream and heartbeat every second, first against the
 * real control plane (PostgreSQL and Redis, or embedded with --embedded),
 * then against the floor: a bare connect-node server that only acknowledges.
 * Each server runs alone in its own process so /proc gives its RSS and CPU;
 * the load generator measures heartbeat round trips. Any stream error,
 * lost heartbeat or worker not ONLINE fails the run instead of being
 * averaged into a figure.
 */

const LEASE_TTL_MS = 10_000;
/** Idle-machine CPU above which the run warns that something else competes for the cores. */
const BUSY_MACHINE_PERCENT = 15;

/** PostgreSQL and Redis (or their embedded stand-ins) for the control plane, and how to clean them up. */
interface Backing {
  description: string;
  env: NodeJS.ProcessEnv;
  dispose(): Promise<void>;
}

async function main(): Promise<number> {
  let options: BenchOptions | undefined;
  try {
    options = loadBenchOptions(process.argv.slice(2), process.env);
  } catch (error) {
    if (!(error instanceof BenchOptionsError)) throw error;
    process.stderr.write(`${error.message}\n\n${USAGE}`);
    return 2;
  }
  if (!options) {
    process.stdout.write(USAGE);
    return 0;
  }

  const runId = randomBytes(4).toString('hex');
  const namePrefix = `bench-${runId}`;
  const workDir = mkdtempSync(join(os.tmpdir(), `sb-bench-${runId}-`));
  const cleanups: (() => Promise<void>)[] = [];
  let succeeded = false;
  try {
    progress(`${describeMachine()}`);
    progress(
      `${options.agents} agents, ${options.warmupS} s warm-up, ${options.durationS} s window; logs in ${workDir}`,
    );
    // Another process busy on a 2-vCPU machine skews every figure: say so up front.
    const background = await measureMachineCpu(2000);
    progress(`machine busy before start: ${background.toFixed(0)}% of one core`);
    if (background > BUSY_MACHINE_PERCENT) {
      progress(
        `WARNING: the machine is already busy (over ${BUSY_MACHINE_PERCENT}% of one core); figures will be noisy`,
      );
    }
    const backing = await prepareBacking(options, runId, workDir);
    cleanups.push(() => backing.dispose());
    progress(`control plane backing: ${backing.description}`);

    const credentials = createBenchCredentials();
    const ours = await measure(
      {
        label: 'control plane',
        entry: './control-plane.server.ts',
        env: {
          ...process.env,
          ...backing.env,
          HOST: '127.0.0.1',
          HTTP_PORT: '0',
          GRPC_PORT: '0',
          HEARTBEAT_INTERVAL_MS: String(HEARTBEAT_INTERVAL_MS),
          LEASE_TTL_MS: String(LEASE_TTL_MS),
          LOG_LEVEL: 'info',
          LOG_FORMAT: 'json',
          REPLICA_ID: `bench-${runId}`,
          // The supported way to seed a fresh deployment: a platform admin
          // (to ask ListWorkers) and a join token (for the agents' Hello).
          BOOTSTRAP_ADMIN_EMAIL: credentials.adminEmail,
          BOOTSTRAP_ADMIN_PASSWORD: credentials.adminPassword,
          BOOTSTRAP_JOIN_TOKEN: credentials.joinToken,
        },
        joinToken: credentials.joinToken,
        countOnline: (httpUrl) => countOnlineWorkers(httpUrl, credentials, namePrefix),
      },
      options,
      namePrefix,
      workDir,
    );
    const floor = await measure(
      {
        label: 'floor',
        entry: './floor.server.ts',
        env: {
          ...process.env,
          HEARTBEAT_INTERVAL_MS: String(HEARTBEAT_INTERVAL_MS),
          LEASE_TTL_MS: String(LEASE_TTL_MS),
        },
        joinToken: credentials.joinToken,
      },
      options,
      namePrefix,
      workDir,
    );

    process.stdout.write(
      `\nStreams bench: ${options.agents} agents, ${options.durationS} s steady window, heartbeat every ${HEARTBEAT_INTERVAL_MS} ms\n`,
    );
    process.stdout.write(`${describeMachine()}; control plane on ${backing.description}\n`);
    process.stdout.write(`machine busy before start: ${background.toFixed(0)}% of one core\n\n`);
    process.stdout.write(`${formatReport(ours, floor)}\n`);
    const problems = [...ours.problems, ...floor.problems];
    for (const problem of problems) progress(`FAILED: ${problem}`);
    if (problems.length > 0) {
      progress(`logs kept in ${workDir}`);
      return 1;
    }
    succeeded = true;
    return 0;
  } catch (error) {
    progress(`FAILED: ${error instanceof Error ? error.message : String(error)}`);
    progress(`logs kept in ${workDir}`);
    return 1;
  } finally {
    for (const cleanup of cleanups.reverse()) {
      await cleanup().catch((error: unknown) =>
        progress(`cleanup failed: ${error instanceof Error ? error.message : String(error)}`),
      );
    }
    if (succeeded && !options?.profile) rmSync(workDir, { recursive: true, force: true });
    else if (succeeded) progress(`CPU profiles in ${workDir}`);
  }
}

async function prepareBacking(options: BenchOptions, runId: string, workDir: string): Promise<Backing> {
  if (options.embedded) {
    // Empty strings read as "unset" in src/config.ts: PGlite and the in-process store.
    return {
      description: 'embedded PGlite + in-process coordination store',
      env: { DATABASE_URL: '', REDIS_URL: '', DATA_DIR: join(workDir, 'data') },
      dispose: async () => {},
    };
  }
  const database = await createBenchDatabase(options.postgresUrl, `sb_bench_${runId}`);
  const keyPrefix = `sb-bench-${runId}:`;
  return {
    description: `PostgreSQL (database ${database.name}) + Redis (prefix ${keyPrefix})`,
    env: { DATABASE_URL: database.url, REDIS_URL: options.redisUrl, REDIS_KEY_PREFIX: keyPrefix },
    dispose: async () => {
      await database.drop();
      const left = await deleteRedisKeys(options.redisUrl, keyPrefix);
      progress(`dropped database ${database.name}; deleted ${left} leftover Redis keys`);
    },
  };
}

/** Throwaway credentials for one run's control plane; they die with its database. */
interface BenchCredentials {
  adminEmail: string;
  adminPassword: string;
  joinToken: string;
}

function createBenchCredentials(): BenchCredentials {
  return {
    adminEmail: `bench-${randomBytes(4).toString('hex')}@bench.local`,
    adminPassword: randomBytes(18).toString('base64url'),
    // The format BOOTSTRAP_JOIN_TOKEN requires: sbj_<16 lowercase alphanumerics>_<43 base64url>.
    joinToken: `sbj_${randomBytes(8).toString('hex')}_${randomBytes(32).toString('base64url')}`,
  };
}

/**
 * Counts the run's workers the control plane reports ONLINE, as an operator
 * would see them: log in as the platform admin, then page through
 * AdminService/ListWorkers over Connect JSON.
 */
async function countOnlineWorkers(httpUrl: string, credentials: BenchCredentials, namePrefix: string): Promise<number> {
  const transport = createConnectTransport({ baseUrl: httpUrl, httpVersion: '1.1', useBinaryFormat: false });
  const { tokens } = await createClient(AuthService, transport).login(
    { email: credentials.adminEmail, password: credentials.adminPassword },
    { timeoutMs: 30_000 },
  );
  if (!tokens?.accessToken) throw new Error('platform admin login returned no access token');
  const headers = { authorization: `Bearer ${tokens.accessToken}` };
  const admin = createClient(AdminService, transport);
  let online = 0;
  let pageToken = '';
  do {
    const page = await admin.listWorkers(
      { pageSize: 1000, status: WorkerStatus.ONLINE, pageToken },
      { timeoutMs: 30_000, headers },
    );
    online += page.workers.filter(
      (w) => w.status === WorkerStatus.ONLINE && w.name.startsWith(`${namePrefix}-`),
    ).length;
    pageToken = page.nextPageToken;
  } while (pageToken !== '');
  return online;
}

async function measureMachineCpu(overMs: number): Promise<number> {
  const started = performance.now();
  const before = readMachineBusySeconds();
  await guarded(sleep(overMs));
  return cpuPercent(before, readMachineBusySeconds(), performance.now() - started);
}

function describeMachine(): string {
  const model = os.cpus()[0]?.model.trim() ?? 'unknown CPU';
  const memory = (os.totalmem() / 2 ** 30).toFixed(1);
  return `${os.availableParallelism()} vCPU (${model}), ${memory} GiB RAM, ${os.type()} ${os.release()}, Node ${process.version}`;
}

process.exitCode = await main();
// Keep-alive sockets (ListWorkers) and the signal listeners would otherwise hold the process open.
process.exit();
