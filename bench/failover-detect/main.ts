import { randomBytes, randomInt } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { WorkerStatus } from '../../gen/switchboard/v1/fleet_pb.js';
import { loadConfig, type Config } from '../../src/config.js';
import { createBenchDatabase, deleteRedisKeys } from '../streams/backing-services.js';
import { BenchChild } from '../streams/bench-child.js';
import type { ServerCommand, ServerEvent } from '../streams/ipc.js';
import { cpuPercent, readCpuSeconds, readMachineBusySeconds } from '../streams/proc-stats.js';
import { guarded } from '../streams/run-control.js';
import { AgentProcess, bundleAgent } from './agent-processes.js';
import { FailoverOptionsError, loadFailoverOptions, USAGE, type FailoverOptions } from './failover.options.js';
import { FleetWatch } from './fleet-watch.js';
import { formatReport, verdict, type Detection, type Fault, type Row } from './report.js';

/**
 * bench/failover-detect: how long the control plane takes to notice that a
 * worker is gone, seen the way an operator sees it.
 *
 * One control plane (real PostgreSQL and Redis, default timing) and N real
 * agent processes (agent/main.ts, bundled once and run with plain node). Once
 * every agent is ONLINE, a few are sent SIGKILL (the kernel closes their
 * sockets: the control plane sees the connection drop) and as many others
 * SIGSTOP (the socket stays open and silent: only the lease can tell), in
 * pairs (one of each at the same instant) spread evenly over one sweep
 * interval. A platform admin's AdminService/WatchWorkers stream times each
 * worker's first OFFLINE and its FAILED from its signal. The others must
 * stay ONLINE throughout. A worker not declared FAILED within the cap, or
 * any false failure, fails the run.
 */

const CONTROL_PLANE_READY_TIMEOUT_MS = 60_000;
const CONTROL_PLANE_STOP_GRACE_MS = 20_000;
/** No agent should take longer than this from its start to ONLINE, however loaded the machine. */
const AGENT_ONLINE_TIMEOUT_MS = 60_000;
const AGENT_STOP_GRACE_MS = 10_000;
/** Idle-machine CPU above which the run warns that something else competes for the cores. */
const BUSY_MACHINE_PERCENT = 15;

/** One agent the bench signalled, and when (monotonic, and the same instant on the wall clock). */
interface Victim {
  agent: AgentProcess;
  fault: Fault;
  sentAtMs: number;
  sentAtEpochMs: number;
}

async function main(): Promise<number> {
  let options: FailoverOptions | undefined;
  try {
    options = loadFailoverOptions(process.argv.slice(2), process.env);
  } catch (error) {
    if (!(error instanceof FailoverOptionsError)) throw error;
    process.stderr.write(`${error.message}\n\n${USAGE}`);
    return 2;
  }
  if (!options) {
    process.stdout.write(USAGE);
    return 0;
  }

  const runId = randomBytes(4).toString('hex');
  const namePrefix = `bench-${runId}-`;
  const workDir = mkdtempSync(join(os.tmpdir(), `sb-failover-${runId}-`));
  const cleanups: (() => Promise<void>)[] = [];
  let succeeded = false;
  const started = performance.now();
  try {
    progress(describeMachine());
    progress(`${options.agents} agents, ${options.kill} SIGKILL + ${options.freeze} SIGSTOP; logs in ${workDir}`);
    const busyBefore = await measureMachineCpu(2000);
    progress(`machine busy before start: ${busyBefore.toFixed(0)}% of one core`);
    if (busyBefore > BUSY_MACHINE_PERCENT) {
      progress(
        `WARNING: the machine is already busy (over ${BUSY_MACHINE_PERCENT}% of one core); figures will be noisy`,
      );
    }

    const bundleStarted = performance.now();
    const bundle = await guarded(bundleAgent(workDir));
    progress(`agent bundled in ${((performance.now() - bundleStarted) / 1000).toFixed(1)} s: ${bundle}`);

    const database = await guarded(createBenchDatabase(options.postgresUrl, `sb_bench_${runId}`));
    const keyPrefix = `sb-bench-${runId}:`;
    const redisUrl = options.redisUrl;
    cleanups.push(async () => {
      await database.drop();
      const left = await deleteRedisKeys(redisUrl, keyPrefix);
      progress(`dropped database ${database.name}; deleted ${left} Redis keys under ${keyPrefix}`);
    });

    const credentials = {
      email: `bench-${runId}@bench.local`,
      password: randomBytes(18).toString('base64url'),
      // The format BOOTSTRAP_JOIN_TOKEN requires: sbj_<16 lowercase alphanumerics>_<43 base64url>.
      joinToken: `sbj_${randomBytes(8).toString('hex')}_${randomBytes(32).toString('base64url')}`,
    };
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      DATABASE_URL: database.url,
      REDIS_URL: redisUrl,
      REDIS_KEY_PREFIX: keyPrefix,
      HOST: '127.0.0.1',
      HTTP_PORT: '0',
      GRPC_PORT: '0',
      LOG_LEVEL: 'info',
      LOG_FORMAT: 'json',
      REPLICA_ID: `bench-${runId}`,
      BOOTSTRAP_ADMIN_EMAIL: credentials.email,
      BOOTSTRAP_ADMIN_PASSWORD: credentials.password,
      BOOTSTRAP_JOIN_TOKEN: credentials.joinToken,
    };
    // The timing the control plane will run with: its defaults unless the environment overrides them.
    const config = loadConfig(env);
    const timing = describeTiming(config);
    progress(`control plane timing: ${timing}`);

    const controlPlane = BenchChild.spawn<ServerCommand, ServerEvent>({
      name: 'control plane',
      entry: './control-plane.server.ts',
      env,
      logFile: join(workDir, 'control-plane.log'),
    });
    cleanups.push(async () => {
      const code = await controlPlane.stop(CONTROL_PLANE_STOP_GRACE_MS, { type: 'stop' });
      if (code !== 0) progress(`control plane exited with code ${code}; see ${controlPlane.logFile}`);
    });
    const ready = await guarded(controlPlane.next('ready', CONTROL_PLANE_READY_TIMEOUT_MS));
    if (!ready.httpUrl) throw new Error('control plane reported no HTTP listener');
    const grpcAddress = new URL(ready.grpcUrl).host;
    progress(`control plane listening on ${ready.grpcUrl} (gRPC) and ${ready.httpUrl} (HTTP)`);

    const watch = await guarded(FleetWatch.open(ready.httpUrl, credentials, namePrefix), controlPlane.failed);
    cleanups.push(async () => watch.close());

    // Start the agents, a few at a time so the machine is not swamped.
    const agents: AgentProcess[] = [];
    cleanups.push(async () => {
      await Promise.all(agents.map((agent) => agent.stop(AGENT_STOP_GRACE_MS)));
      progress(`stopped ${agents.length} agents`);
    });
    const stateDir = join(workDir, 'agents');
    mkdirSync(stateDir);
    const names = Array.from({ length: options.agents }, (_, i) => `${namePrefix}${String(i).padStart(4, '0')}`);
    let agentFailed: (error: Error) => void = () => {};
    const agentsFailed = new Promise<never>((_, reject) => (agentFailed = reject));
    agentsFailed.catch(() => {});
    const rampStarted = performance.now();
    for (const [index, name] of names.entries()) {
      const concurrency = options.startConcurrency;
      await guarded(
        watch.until(
          () => index - watch.countOnline(names.slice(0, index)) < concurrency,
          AGENT_ONLINE_TIMEOUT_MS,
          `waiting for agents to come ONLINE (${index} started)`,
        ),
        controlPlane.failed,
        agentsFailed,
      );
      const agent = AgentProcess.spawn({
        bundle,
        name,
        controlPlane: grpcAddress,
        joinToken: credentials.joinToken,
        stateDir,
        logFile: join(stateDir, `${name}.log`),
      });
      agents.push(agent);
      void agent.exited.then(() => {
        if (agent.unexpectedExit) agentFailed(new Error(`agent ${name} ${agent.unexpectedExit}; see ${agent.logFile}`));
      });
      if ((index + 1) % 25 === 0) progress(`${index + 1} agents started, ${watch.countOnline(names)} ONLINE`);
    }
    await guarded(
      watch.until(() => watch.countOnline(names) === names.length, AGENT_ONLINE_TIMEOUT_MS, 'all agents ONLINE'),
      controlPlane.failed,
      agentsFailed,
    );
    progress(`all ${names.length} agents ONLINE in ${((performance.now() - rampStarted) / 1000).toFixed(1)} s`);

    // Let start-up CPU die down and every agent heartbeat a few times first.
    await guarded(sleep(options.settleS * 1000), controlPlane.failed, agentsFailed, watch.failed);
    const early = watch.events.filter((event) => event.kind !== 'ONLINE');
    if (early.length > 0 || watch.countOnline(names) !== names.length) {
      throw new Error(
        `before any signal, ${early.length} OFFLINE/FAILED events (${early
          .slice(0, 5)
          .map((e) => `${e.workerName} ${e.kind}: ${e.reason}`)
          .join('; ')}) and ${watch.countOnline(names)} of ${names.length} ONLINE`,
      );
    }

    // The faults, in pairs: a SIGKILL and a SIGSTOP at the same instant, so
    // neither kind waits behind the other. Sent all at once, every SIGKILL
    // would meet the same sweeper tick and ten samples would be one; spread
    // over one sweep interval they cover every phase of it.
    const shuffled = shuffle(agents);
    const killed = shuffled.slice(0, options.kill);
    const frozen = shuffled.slice(options.kill, options.kill + options.freeze);
    const survivors = shuffled.slice(options.kill + options.freeze);
    // Killed agents stop counting at once and frozen ones use nothing, so the
    // run's own CPU is the control plane, the others and the bench itself.
    const ownPids = [controlPlane.pid, ...survivors.map((agent) => agent.pid)];
    const machineBefore = readMachineBusySeconds();
    const ownBefore = ownCpuSeconds(ownPids);
    const loopDelay = monitorEventLoopDelay({ resolution: 10 });
    loopDelay.enable();
    const victims: Victim[] = [];
    const spreadMs = options.spreadMs ?? config.sweepIntervalMs;
    const pairs = Math.max(killed.length, frozen.length);
    const firstSignalAtMs = performance.now();
    for (let i = 0; i < pairs; i++) {
      const waitMs = firstSignalAtMs + (i * spreadMs) / pairs - performance.now();
      // Not even a zero sleep when nothing is due: with --spread 0 the loop stays tight.
      if (waitMs > 0) await guarded(sleep(waitMs));
      for (const [agent, fault] of [
        [killed[i], 'SIGKILL'],
        [frozen[i], 'SIGSTOP'],
      ] as const) {
        if (!agent) continue;
        const sentAtMs = agent.inflict(fault === 'SIGKILL' ? 'killed' : 'frozen');
        victims.push({ agent, fault, sentAtMs, sentAtEpochMs: performance.timeOrigin + sentAtMs });
      }
    }
    const lastSignalAtMs = victims.at(-1)?.sentAtMs ?? performance.now();
    progress(
      `sent ${killed.length} SIGKILL and ${frozen.length} SIGSTOP over ${(lastSignalAtMs - firstSignalAtMs).toFixed(0)} ms; watching for ${options.capS} s`,
    );

    // Watch the whole cap, not just until the last detection: the others must
    // stay ONLINE for as long as a detection could have taken.
    const capMs = options.capS * 1000;
    await guarded(sleep(Math.max(0, lastSignalAtMs + capMs - performance.now())), controlPlane.failed, watch.failed);
    loopDelay.disable();
    const windowMs = performance.now() - firstSignalAtMs;
    const machineCpu = cpuPercent(machineBefore, readMachineBusySeconds(), windowMs);
    const ownCpu = cpuPercent(ownBefore, ownCpuSeconds(ownPids), windowMs);

    const detections = victims.map((victim) => detect(victim, watch, capMs));
    const victimNames = new Set(victims.map((victim) => victim.agent.name));
    const falseEvents = watch.events
      .filter((event) => !victimNames.has(event.workerName) && event.kind !== 'ONLINE')
      .map((event) => `${event.workerName} ${event.kind}: ${event.reason}`);
    const listed = await guarded(watch.listStatuses(), controlPlane.failed);
    const survivorNames = survivors.map((agent) => agent.name);
    const facts = {
      agents: options.agents,
      signals: `${killed.length} SIGKILL + ${frozen.length} SIGSTOP, in pairs spread evenly over ${spreadMs} ms`,
      capS: options.capS,
      timing,
      machine: describeMachine(),
      busyBeforePercent: busyBefore,
      machineCpuPercent: machineCpu,
      runCpuPercent: ownCpu,
      loopDelayP99Ms: loopDelay.percentile(99) / 1e6,
      loopDelayMaxMs: loopDelay.max / 1e6,
      survivors: survivors.length,
      survivorsOnlineWatch: watch.countOnline(survivorNames),
      survivorsOnlineList: survivorNames.filter((name) => listed.get(name) === WorkerStatus.ONLINE).length,
      survivorsRunning: survivors.filter((agent) => agent.running).length,
      falseEvents,
      victimsFailedList: victims.filter((victim) => listed.get(victim.agent.name) === WorkerStatus.FAILED).length,
    };
    const rows: Row[] = [
      {
        label: 'SIGKILL -> first OFFLINE (connection loss noticed)',
        fault: 'SIGKILL',
        event: 'OFFLINE',
        targetS: undefined,
        targetNote: 'none',
      },
      {
        label: 'SIGKILL -> FAILED',
        fault: 'SIGKILL',
        event: 'FAILED',
        targetS: (config.failureGraceMs + 1000) / 1000,
        targetNote: 'failure grace + 1 s',
      },
      {
        label: 'SIGSTOP -> first OFFLINE',
        fault: 'SIGSTOP',
        event: 'OFFLINE',
        targetS: undefined,
        targetNote: 'none (the lease fails it directly)',
      },
      {
        label: 'SIGSTOP -> FAILED',
        fault: 'SIGSTOP',
        event: 'FAILED',
        targetS: (config.leaseTtlMs + 2000) / 1000,
        targetNote: 'lease TTL + 2 s',
      },
    ];
    process.stdout.write(`\n${formatReport(rows, detections, facts)}`);

    const problems: string[] = [];
    const undetected = detections.filter((d) => d.failedS === undefined);
    if (undetected.length > 0) {
      problems.push(
        `${undetected.length} signalled agents not FAILED within ${options.capS} s: ${undetected.map((d) => `${d.name} (${d.fault})`).join(', ')}`,
      );
    }
    if (falseEvents.length > 0) problems.push(`${falseEvents.length} OFFLINE/FAILED events for agents never signalled`);
    if (facts.survivorsOnlineWatch !== survivors.length || facts.survivorsOnlineList !== survivors.length) {
      problems.push(
        `of ${survivors.length} agents never signalled, ${facts.survivorsOnlineWatch} ONLINE on WatchWorkers and ${facts.survivorsOnlineList} on ListWorkers`,
      );
    }
    if (facts.survivorsRunning !== survivors.length) {
      problems.push(`${survivors.length - facts.survivorsRunning} agents never signalled exited on their own`);
    }
    if (facts.victimsFailedList !== victims.length) {
      problems.push(`ListWorkers shows ${facts.victimsFailedList} of ${victims.length} signalled agents FAILED`);
    }
    const missed = rows.filter((row) => verdict(row, detections) === 'MISSED').map((row) => row.label);
    if (missed.length > 0) {
      const message = `target missed: ${missed.join(', ')}`;
      if (options.strict) problems.push(message);
      else progress(`${message} (not failing the run; use --strict to)`);
    }
    for (const problem of problems) progress(`FAILED: ${problem}`);
    if (problems.length > 0) return 1;
    succeeded = true;
    return 0;
  } catch (error) {
    progress(`FAILED: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  } finally {
    for (const cleanup of cleanups.reverse()) {
      await cleanup().catch((error: unknown) =>
        progress(`cleanup failed: ${error instanceof Error ? error.message : String(error)}`),
      );
    }
    if (succeeded) rmSync(workDir, { recursive: true, force: true });
    else progress(`logs kept in ${workDir}`);
    progress(`run took ${((performance.now() - started) / 1000).toFixed(0)} s`);
  }
}

/** When the watcher saw a signalled agent's first OFFLINE and its FAILED, if within the cap. */
function detect(victim: Victim, watch: FleetWatch, capMs: number): Detection {
  const mine = watch.events.filter(
    (event) =>
      event.workerName === victim.agent.name &&
      event.receivedAtMs >= victim.sentAtMs &&
      event.receivedAtMs - victim.sentAtMs <= capMs,
  );
  const offline = mine.find((event) => event.kind === 'OFFLINE');
  const failed = mine.find((event) => event.kind === 'FAILED');
  const since = (atMs: number | undefined, fromMs: number) => (atMs === undefined ? undefined : (atMs - fromMs) / 1000);
  return {
    name: victim.agent.name,
    fault: victim.fault,
    offlineS: since(offline?.receivedAtMs, victim.sentAtMs),
    failedS: since(failed?.receivedAtMs, victim.sentAtMs),
    offlineDecidedS: since(offline?.occurredAtEpochMs, victim.sentAtEpochMs),
    failedDecidedS: since(failed?.occurredAtEpochMs, victim.sentAtEpochMs),
  };
}

/** Fisher-Yates with a CSPRNG: which agents are signalled must not depend on start order. */
function shuffle<T>(items: readonly T[]): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [copy[i], copy[j]] = [copy[j] as T, copy[i] as T];
  }
  return copy;
}

function describeTiming(config: Config): string {
  const s = (ms: number) => `${ms / 1000} s`;
  return (
    `lease TTL ${s(config.leaseTtlMs)}, heartbeat ${s(config.heartbeatIntervalMs)}, ` +
    `failure grace ${s(config.failureGraceMs)}, sweep ${s(config.sweepIntervalMs)}`
  );
}

/** CPU seconds used so far by these processes and this one; a process already gone counts as nothing. */
function ownCpuSeconds(pids: readonly number[]): number {
  const self = process.cpuUsage();
  let total = (self.user + self.system) / 1e6;
  for (const pid of pids) {
    try {
      total += readCpuSeconds(pid);
    } catch {
      // Exited: its CPU time went with it.
    }
  }
  return total;
}

async function measureMachineCpu(overMs: number): Promise<number> {
  const begun = performance.now();
  const before = readMachineBusySeconds();
  await guarded(sleep(overMs));
  return cpuPercent(before, readMachineBusySeconds(), performance.now() - begun);
}

function describeMachine(): string {
  const model = os.cpus()[0]?.model.trim() ?? 'unknown CPU';
  const memory = (os.totalmem() / 2 ** 30).toFixed(1);
  return `${os.availableParallelism()} vCPU (${model}), ${memory} GiB RAM, ${os.type()} ${os.release()}, Node ${process.version}`;
}

/** One timestamped line on stderr, so stdout carries only the report. */
function progress(message: string): void {
  process.stderr.write(`[bench:failover-detect ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

process.exitCode = await main();
// Keep-alive sockets and the agents' IPC channels would otherwise hold the process open.
process.exit();
