import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BenchChild } from '../harness/child.js';
import { guarded } from '../harness/interrupt.js';
import type { ServerCommand, ServerEvent } from '../harness/ipc.js';
import { median } from '../harness/measure.js';
import {
  cpuPercent,
  groupCpuSeconds,
  readCpuSeconds,
  readCpuSecondsByName,
  readMachineBusySeconds,
  readRssBytes,
} from '../harness/proc-stats.js';
import type { BenchRun } from '../harness/run.js';
import type { BenchOptions } from './bench.options.js';
import type { LoadCommand, LoadEvent, WindowReport } from './ipc.js';
import type { ServerFigures } from './report.js';

/** Every simulated agent heartbeats at this interval (the servers' Welcome says so). */
export const HEARTBEAT_INTERVAL_MS = 1000;
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
/** Below this share of heartbeats acknowledged the server is not keeping up, and the figures would flatter it. */
const MIN_ACKED_SHARE = 0.97;

/** One server to measure: how to start it and, for the control plane, how to ask it which workers are ONLINE. */
export interface Target {
  label: string;
  entry: URL;
  env: NodeJS.ProcessEnv;
  /** What the agents enrol with; the same Hello goes to both servers. */
  joinToken: string;
  countOnline?: (httpUrl: string) => Promise<number>;
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
export async function measure(
  target: Target,
  options: BenchOptions,
  run: BenchRun,
  namePrefix: string,
): Promise<ServerFigures> {
  const { progress } = run;
  const slug = target.label.replace(/\W+/g, '-');
  const server = await startServer(target, run, slug);
  let load: BenchChild<LoadCommand, LoadEvent> | undefined;
  try {
    load = BenchChild.spawn<LoadCommand, LoadEvent>({
      name: `load generator (${target.label})`,
      entry: new URL('./load-generator.ts', import.meta.url),
      env: process.env,
      logFile: join(run.workDir, `load-${slug}.log`),
    });
    const connected = await connectAgents(load, server, target.joinToken, options, namePrefix);
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

async function startServer(target: Target, run: BenchRun, slug: string): Promise<StartedServer> {
  const child = BenchChild.spawn<ServerCommand, ServerEvent>({
    name: target.label,
    entry: target.entry,
    env: target.env,
    logFile: join(run.workDir, `${slug}.log`),
    // A folder per server: with --import tsx the loader thread writes a profile too.
    nodeArgs: run.profileArgs(slug),
  });
  try {
    const ready = await guarded(child.next('ready', SERVER_READY_TIMEOUT_MS));
    await guarded(sleep(IDLE_SETTLE_MS), child.failed);
    const idleRssBytes = median(await sampleRss(child, 5, 400));
    run.progress(`${target.label}: listening on ${ready.grpcUrl}, idle RSS ${(idleRssBytes / 2 ** 20).toFixed(1)} MiB`);
    return { child, grpcUrl: ready.grpcUrl, httpUrl: ready.httpUrl, idleRssBytes };
  } catch (error) {
    await child.stop(5000);
    throw error;
  }
}

async function connectAgents(
  load: BenchChild<LoadCommand, LoadEvent>,
  server: StartedServer,
  joinToken: string,
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
      joinToken,
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
