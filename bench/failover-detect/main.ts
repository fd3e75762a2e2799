import { randomInt } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { WorkerStatus } from '../../gen/switchboard/v1/fleet_pb.js';
import { loadConfig, type Config } from '../../src/config.js';
import { AgentProcess, bundleAgent } from '../harness/agents.js';
import { startControlPlaneRun } from '../harness/control-plane-run.js';
import { FleetWatch } from '../harness/fleet-watch.js';
import { guarded } from '../harness/interrupt.js';
import { cpuPercent, readCpuSeconds, readMachineBusySeconds } from '../harness/proc-stats.js';
import { runBench, type BenchOutcome, type BenchRun } from '../harness/run.js';
import { failoverOptions, type FailoverOptions } from './failover.options.js';
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

/** No agent should take longer than this from its start to ONLINE, however loaded the machine. */
const AGENT_ONLINE_TIMEOUT_MS = 60_000;
const AGENT_STOP_GRACE_MS = 10_000;

/** One agent the bench signalled, and when (monotonic, and the same instant on the wall clock). */
interface Victim {
  agent: AgentProcess;
  fault: Fault;
  sentAtMs: number;
  sentAtEpochMs: number;
}

async function measureFailover(options: FailoverOptions, run: BenchRun): Promise<BenchOutcome> {
  const { progress, workDir } = run;
  const namePrefix = `bench-${run.runId}-`;
  const bundleStarted = performance.now();
  const bundle = await guarded(bundleAgent(workDir));
  progress(`agent bundled in ${((performance.now() - bundleStarted) / 1000).toFixed(1)} s: ${bundle}`);

  const controlPlane = await startControlPlaneRun(run, options);
  // The timing the control plane runs with: its defaults unless the environment overrides them.
  const config = loadConfig(controlPlane.env);
  const timing = describeTiming(config);
  progress(`control plane timing: ${timing}`);

  const watch = await guarded(
    FleetWatch.open(controlPlane.httpUrl, controlPlane.admin, namePrefix),
    controlPlane.failed,
  );
  run.defer(() => watch.close());

  // Start the agents, a few at a time so the machine is not swamped.
  const agents: AgentProcess[] = [];
  run.defer(async () => {
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
      controlPlane: controlPlane.grpcAddress,
      joinToken: controlPlane.joinToken,
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
  return { report: formatReport(rows, detections, facts), problems };
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

await runBench({
  name: 'bench:failover-detect',
  options: failoverOptions,
  describe: (o) => `${o.agents} agents, ${o.kill} SIGKILL + ${o.freeze} SIGSTOP`,
  services: (o) => o,
  workDir: true,
  run: measureFailover,
});
