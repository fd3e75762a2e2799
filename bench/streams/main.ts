import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { AdminService } from '../../gen/switchboard/v1/admin_pb.js';
import { WorkerStatus } from '../../gen/switchboard/v1/fleet_pb.js';
import { createBenchDatabase, deleteRedisKeys } from './backing-services.js';
import { BenchChild } from './bench-child.js';
import { BenchOptionsError, loadBenchOptions, USAGE, type BenchOptions } from './bench.options.js';
import type { LoadCommand, LoadEvent, ServerCommand, ServerEvent, WindowReport } from './ipc.js';
import {
  cpuPercent,
  groupCpuSeconds,
  readCpuSeconds,
  readCpuSecondsByName,
  readMachineBusySeconds,
  readRssBytes,
} from './proc-stats.js';
import { formatReport, type ServerFigures } from './report.js';

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

const HEARTBEAT_INTERVAL_MS = 1000;
const LEASE_TTL_MS = 10_000;
const SERVER_READY_TIMEOUT_MS = 60_000;
/** Lets start-up garbage and timers settle before the idle RSS is read. */
const IDLE_SETTLE_MS = 3000;
const WELCOME_TIMEOUT_MS = 30_000;
const WINDOW_REPORT_TIMEOUT_MS = 15_000;
const LOAD_STOP_GRACE_MS = 45_000;
const SERVER_STOP_GRACE_MS = 20_000;
/**
 * The control plane's backing services, by process name, so the work the
 * control plane pushes onto them shows up next to its own CPU.
 */
const BACKING_PROCESSES = ['postgres', 'redis-server'];
/** Idle-machine CPU above which the run warns that something else competes for the cores. */
const BUSY_MACHINE_PERCENT = 15;
/** Below this share of heartbeats acknowledged the server is not keeping up, and the figures would flatter it. */
const MIN_ACKED_SHARE = 0.97;

/** One server to measure: how to start it and, for the control plane, how to ask it which workers are ONLINE. */
interface Target {
  label: string;
  entry: string;
  env: NodeJS.ProcessEnv;
  countOnline?: (httpUrl: string) => Promise<number>;
}

/** PostgreSQL and Redis (or their embedded stand-ins) for the control plane, and how to clean them up. */
interface Backing {
  description: string;
  env: NodeJS.ProcessEnv;
  dispose(): Promise<void>;
}

// Ctrl-C must still drop the database and stop the children: every wait
// races this, so an interrupt unwinds through the cleanup in main().
const interrupted = new Promise<never>((_, reject) => {
  const onSignal = (signal: NodeJS.Signals) => reject(new Error(`interrupted by ${signal}`));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
});
interrupted.catch(() => {});

function guarded<T>(promise: Promise<T>, ...failures: Promise<never>[]): Promise<T> {
  return Promise.race([promise, interrupted, ...failures]);
}

function progress(message: string): void {
  process.stderr.write(`[bench:streams ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
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
        },
        countOnline: (httpUrl) => countOnlineWorkers(httpUrl, namePrefix),
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

/** A server under test, its idle RSS taken, ready for agents. */
interface StartedServer {
  child: BenchChild<ServerCommand, ServerEvent>;
  grpcUrl: string;
  httpUrl: string | undefined;
  idleRssBytes: number;
}

/** Resource use over the steady window, from /proc, plus what the load generator saw. */
interface WindowMeasurement {
  wallMs: number;
  rss: number[];
  serverCpuSeconds: number;
  serverCpuPercent: number;
  clientCpuPercent: number;
  backingCpuPercent: number;
  machineCpuPercent: number;
  report: WindowReport;
}

/**
 * One server's whole run: start it and read its idle RSS, connect the
 * agents, warm up, measure the steady window, check what the server
 * believes, stop everything. Stream errors abort the run; a wrong ONLINE
 * count is recorded in `problems`, so the figures still print and the run
 * still fails.
 */
async function measure(
  target: Target,
  options: BenchOptions,
  namePrefix: string,
  workDir: string,
): Promise<ServerFigures> {
  const slug = target.label.replace(/\W+/g, '-');
  const server = await startServer(target, options, slug, workDir);
  let load: BenchChild<LoadCommand, LoadEvent> | undefined;
  try {
    load = BenchChild.spawn<LoadCommand, LoadEvent>({
      name: `load generator (${target.label})`,
      entry: './load-generator.ts',
      env: process.env,
      logFile: join(workDir, `load-${slug}.log`),
    });
    const connected = await connectAgents(load, server, options, namePrefix);
    progress(`${target.label}: ${options.agents} agents connected in ${(connected.elapsedMs / 1000).toFixed(1)} s`);
    await guarded(sleep(options.warmupS * 1000), server.child.failed, load.failed);

    progress(`${target.label}: measuring for ${options.durationS} s`);
    const window = await measureWindow(load, server, options);
    const acked = window.report.latency.count;
    const sent = window.report.heartbeatsSent;
    if (window.report.heartbeatsLost > 0) {
      throw new Error(`${window.report.heartbeatsLost} heartbeats were never acknowledged`);
    }
    // Compared with what was sent, not with agents x seconds: the agents'
    // own timers drift under load, and that is not the server's doing.
    if (acked < sent * MIN_ACKED_SHARE) {
      throw new Error(
        `only ${acked} of ${sent} heartbeats sent in the window were acknowledged in it: server not keeping up`,
      );
    }

    const problems: string[] = [];
    const count = target.countOnline;
    const httpUrl = server.httpUrl;
    const onlineWorkers =
      count && httpUrl ? await guarded(count(httpUrl), server.child.failed, load.failed) : undefined;
    if (onlineWorkers !== undefined) {
      progress(`${target.label}: ListWorkers reports ${onlineWorkers} of ${options.agents} workers ONLINE`);
      if (onlineWorkers !== options.agents) {
        problems.push(
          `${target.label} reports ${onlineWorkers} workers ONLINE while all ${options.agents} streams are live`,
        );
      }
    }

    await load.stop(LOAD_STOP_GRACE_MS, { type: 'stop' });
    const stopped = await guarded(load.next('stopped', 1000), server.child.failed);
    progress(`${target.label}: ${stopped.cleanEnds} streams ended cleanly`);
    const onlineAfterStop = count && httpUrl ? await guarded(count(httpUrl), server.child.failed) : undefined;
    if (onlineAfterStop !== undefined && onlineAfterStop !== 0) {
      problems.push(`${target.label} still reports ${onlineAfterStop} workers ONLINE after every agent hung up`);
    }
    const exitCode = await server.child.stop(SERVER_STOP_GRACE_MS, { type: 'stop' });
    if (exitCode !== 0) {
      problems.push(`${target.label} exited with code ${exitCode} when asked to stop; see ${server.child.logFile}`);
    }

    const loadedRssBytes = median(window.rss);
    return {
      label: target.label,
      agents: options.agents,
      connectSeconds: connected.elapsedMs / 1000,
      windowSeconds: window.wallMs / 1000,
      idleRssBytes: server.idleRssBytes,
      loadedRssBytes,
      peakRssBytes: Math.max(...window.rss),
      rssPerStreamBytes: (loadedRssBytes - server.idleRssBytes) / options.agents,
      cpuPercent: window.serverCpuPercent,
      cpuMicrosPerHeartbeat: (window.serverCpuSeconds / acked) * 1e6,
      heartbeatsPerSecond: acked / (window.wallMs / 1000),
      window: window.report,
      clientCpuPercent: window.clientCpuPercent,
      backingCpuPercent: window.backingCpuPercent,
      machineCpuPercent: window.machineCpuPercent,
      onlineWorkers,
      onlineAfterStop,
      problems,
    };
  } finally {
    // On the success path both have exited already; on failure this ends them.
    await load?.stop(5000);
    await server.child.stop(SERVER_STOP_GRACE_MS);
  }
}

async function startServer(
  target: Target,
  options: BenchOptions,
  slug: string,
  workDir: string,
): Promise<StartedServer> {
  const child = BenchChild.spawn<ServerCommand, ServerEvent>({
    name: target.label,
    entry: target.entry,
    env: target.env,
    logFile: join(workDir, `${slug}.log`),
    // A folder per server: with --import tsx the loader thread writes a profile too.
    nodeArgs: options.profile ? ['--cpu-prof', `--cpu-prof-dir=${join(workDir, `${slug}-profile`)}`] : [],
  });
  try {
    const ready = await guarded(child.next('ready', SERVER_READY_TIMEOUT_MS));
    await guarded(sleep(IDLE_SETTLE_MS), child.failed);
    const idleRssBytes = median(await sampleRss(child, 5, 400));
    progress(`${target.label}: listening on ${ready.grpcUrl}, idle RSS ${(idleRssBytes / 2 ** 20).toFixed(1)} MiB`);
    return { child, grpcUrl: ready.grpcUrl, httpUrl: ready.httpUrl, idleRssBytes };
  } catch (error) {
    await child.stop(5000);
    throw error;
  }
}

async function connectAgents(
  load: BenchChild<LoadCommand, LoadEvent>,
  server: StartedServer,
  options: BenchOptions,
  namePrefix: string,
): Promise<{ elapsedMs: number }> {
  load.send({
    type: 'start',
    options: {
      target: server.grpcUrl,
      agents: options.agents,
      namePrefix,
      connectConcurrency: options.connectConcurrency,
      welcomeTimeoutMs: WELCOME_TIMEOUT_MS,
    },
  });
  // Generous: the slowest legitimate ramp is every Hello taking the whole Welcome timeout.
  const rampTimeoutMs = WELCOME_TIMEOUT_MS * Math.ceil(options.agents / options.connectConcurrency) + 30_000;
  const connected = await guarded(load.next('connected', rampTimeoutMs), server.child.failed);
  if (connected.agents !== options.agents) {
    throw new Error(`only ${connected.agents} of ${options.agents} agents connected`);
  }
  return connected;
}

async function measureWindow(
  load: BenchChild<LoadCommand, LoadEvent>,
  server: StartedServer,
  options: BenchOptions,
): Promise<WindowMeasurement> {
  const serverPid = server.child.pid;
  const readCpu = () => ({
    server: readCpuSeconds(serverPid),
    load: readCpuSeconds(load.pid),
    backing: readCpuSecondsByName(BACKING_PROCESSES),
    machine: readMachineBusySeconds(),
  });
  const started = performance.now();
  const before = readCpu();
  load.send({ type: 'window-start' });
  const rss: number[] = [];
  for (let second = 1; second <= options.durationS; second++) {
    // Sleep to absolute deadlines so sampling does not drift over a long window.
    await guarded(sleep(Math.max(0, started + second * 1000 - performance.now())), server.child.failed, load.failed);
    rss.push(readRssBytes(serverPid));
  }
  load.send({ type: 'window-end' });
  const wallMs = performance.now() - started;
  const after = readCpu();
  const { report } = await guarded(load.next('window', WINDOW_REPORT_TIMEOUT_MS), server.child.failed);
  return {
    wallMs,
    rss,
    serverCpuSeconds: after.server - before.server,
    serverCpuPercent: cpuPercent(before.server, after.server, wallMs),
    clientCpuPercent: cpuPercent(before.load, after.load, wallMs),
    backingCpuPercent: cpuPercent(0, groupCpuSeconds(before.backing, after.backing), wallMs),
    machineCpuPercent: cpuPercent(before.machine, after.machine, wallMs),
    report,
  };
}

/** Counts the run's workers the control plane reports ONLINE, through AdminService/ListWorkers over Connect JSON. */
async function countOnlineWorkers(httpUrl: string, namePrefix: string): Promise<number> {
  const admin = createClient(
    AdminService,
    createConnectTransport({ baseUrl: httpUrl, httpVersion: '1.1', useBinaryFormat: false }),
  );
  let online = 0;
  let pageToken = '';
  do {
    const page = await admin.listWorkers(
      { pageSize: 1000, status: WorkerStatus.ONLINE, pageToken },
      { timeoutMs: 30_000 },
    );
    online += page.workers.filter(
      (w) => w.status === WorkerStatus.ONLINE && w.name.startsWith(`${namePrefix}-`),
    ).length;
    pageToken = page.nextPageToken;
  } while (pageToken !== '');
  return online;
}

async function sampleRss(
  server: BenchChild<ServerCommand, ServerEvent>,
  samples: number,
  everyMs: number,
): Promise<number[]> {
  const values: number[] = [];
  for (let i = 0; i < samples; i++) {
    if (i > 0) await guarded(sleep(everyMs), server.failed);
    values.push(readRssBytes(server.pid));
  }
  return values;
}

async function measureMachineCpu(overMs: number): Promise<number> {
  const started = performance.now();
  const before = readMachineBusySeconds();
  await guarded(sleep(overMs));
  return cpuPercent(before, readMachineBusySeconds(), performance.now() - started);
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] ?? NaN)
    : ((sorted[middle - 1] ?? NaN) + (sorted[middle] ?? NaN)) / 2;
}

function describeMachine(): string {
  const model = os.cpus()[0]?.model.trim() ?? 'unknown CPU';
  const memory = (os.totalmem() / 2 ** 30).toFixed(1);
  return `${os.availableParallelism()} vCPU (${model}), ${memory} GiB RAM, ${os.type()} ${os.release()}, Node ${process.version}`;
}

process.exitCode = await main();
// Keep-alive sockets (ListWorkers) and the signal listeners would otherwise hold the process open.
process.exit();
