/**
 * bench/send: the send pipeline against its floor, in one run.
 *
 * Floor: bench/send/floor.server.ts relays SendText as a Request on one
 * agent's WorkerService.Connect stream and the Response back (no
 * authentication, validation, database, Redis or session lookup), with as
 * many bench/send/floor.agent.ts processes answering every Request at once;
 * `concurrency` callers in a closed loop give the floor's rate and its CPU
 * per message.
 *
 * Control plane: the production process (bench/streams/control-plane.server.ts)
 * on real PostgreSQL (a throwaway database) and Redis (a fresh key prefix),
 * with N real agent processes (agent/main.ts bundled, the sandbox engine with
 * its default receipt timing: SENT, DELIVERED, then READ about a second
 * after the send). A tenant signs up, creates a DEVELOPER API key, creates
 * the sessions and scans each QR code through SandboxService/ScanQr until
 * all are WORKING. Then SendText is offered open-loop (a fixed rate,
 * whatever the answers) at steps that are fractions of the floor's rate:
 * a step is sustained when every call was accepted and the last message of
 * its window was READ within 2 s of the window's end (receipts kept up).
 * Each step reports acceptance latency (from when the call was due),
 * end-to-end time to DELIVERED of a sample, and CPU per message.
 *
 *   npm run bench:send -- [--sessions 1000] [--agents 10] [--steps 0.25,0.5,0.75,1] [--duration 10]
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from '@connectrpc/connect';
import { timestampMs } from '@bufbuild/protobuf/wkt';
import { MessageService, MessageStatus } from '../../gen/switchboard/v1/message_pb.js';
import { AgentProcess, bundleAgent } from '../harness/agents.js';
import { BenchChild } from '../harness/child.js';
import { startControlPlaneRun, UNREACHABLE_RATE_LIMITS, type ControlPlaneRun } from '../harness/control-plane-run.js';
import { FleetWatch } from '../harness/fleet-watch.js';
import { guarded } from '../harness/interrupt.js';
import type { ServerCommand } from '../harness/ipc.js';
import { CpuWindow, distribution, type Distribution } from '../harness/measure.js';
import { runBench, type BenchOutcome, type BenchRun } from '../harness/run.js';
import { signUpTenant, tenantTransport, type BenchTenant } from '../harness/tenant.js';
import type { FloorEvent } from './ipc.js';
import { formatReport, sustained, type SideFigures, type StepFigures } from './report.js';
import { driveOpenLoop } from './open-loop.js';
import { driveSends } from './send-load.js';
import { sendOptions, type SendOptions } from './send.options.js';
import { createWorkingSessions } from './working-sessions.js';

const AGENTS_READY_TIMEOUT_MS = 60_000;
const STOP_GRACE_MS = 10_000;
const RECEIPTS_TIMEOUT_MS = 60_000;
const floorAgentMain = new URL('./floor.agent.ts', import.meta.url);

async function measureSend(options: SendOptions, run: BenchRun): Promise<BenchOutcome> {
  const { progress, workDir, runId } = run;
  const agentBundle = await guarded(bundleAgent(workDir));
  const floorBundle = await guarded(bundleAgent(workDir, fileURLToPath(floorAgentMain), 'floor-agent.mjs'));
  const stateDir = join(workDir, 'agents');
  mkdirSync(stateDir);
  const load = {
    concurrency: options.concurrency,
    warmupMs: options.warmupS * 1000,
    windowMs: options.durationS * 1000,
  };

  // ---- the floor ----
  const floorServer = BenchChild.spawn<ServerCommand, FloorEvent>({
    name: 'floor server',
    entry: new URL('./floor.server.ts', import.meta.url),
    env: process.env,
    logFile: join(workDir, 'floor-server.log'),
    nodeArgs: run.profileArgs('floor-server'),
  });
  run.defer(() => floorServer.stop(STOP_GRACE_MS, { type: 'stop' }));
  const floorReady = await guarded(floorServer.next('ready', 60_000));
  const floorAgents = spawnAgents(options.agents, {
    bundle: floorBundle,
    prefix: `floor-${runId}-`,
    address: new URL(floorReady.grpcUrl).host,
    joinToken: 'unused-by-the-floor',
    stateDir,
    extraArgs: [],
  });
  run.defer(() => stopAgents(floorAgents));
  for (let connected = 0; connected < options.agents;) {
    connected = (await guarded(floorServer.next('agents', AGENTS_READY_TIMEOUT_MS))).connected;
  }
  progress(`floor: ${options.agents} floor agents connected; sending`);
  const floorIds = Array.from({ length: options.sessions }, () => randomUUID());
  const floor = await measureSide({
    ...load,
    grpcUrl: floorReady.grpcUrl,
    credential: 'ignored-by-the-floor',
    sessionIds: floorIds,
    serverPid: floorServer.pid,
    agentPids: floorAgents.map((agent) => agent.pid),
    failed: floorServer.failed,
  });
  progress(`floor: ${floor.load.completed} sends in the window`);
  await run.cleanUp();

  // ---- the control plane ----
  const controlPlane: ControlPlaneRun = await startControlPlaneRun(run, options, {
    SESSION_QUOTA_FREE: String(options.sessions),
    ...UNREACHABLE_RATE_LIMITS,
    // The pipeline's own cost: the governor would pace every session to a
    // few messages a minute, by design (its rules have their own tests).
    SEND_GOVERNOR: 'off',
  });
  const prefix = `send-${runId}-`;
  const watch = await guarded(FleetWatch.open(controlPlane.httpUrl, controlPlane.admin, prefix), controlPlane.failed);
  run.defer(() => watch.close());
  const capacity = Math.ceil(options.sessions / options.agents);
  const agents = spawnAgents(options.agents, {
    bundle: agentBundle,
    prefix,
    address: controlPlane.grpcAddress,
    joinToken: controlPlane.joinToken,
    stateDir,
    // Drain timeout 0: at the end the agents stop at once instead of waiting for their sessions to move.
    extraArgs: ['--capacity', String(capacity), '--drain-timeout', '0'],
  });
  run.defer(() => stopAgents(agents));
  const names = agents.map((agent) => agent.name);
  await guarded(
    watch.until(() => watch.countOnline(names) === names.length, AGENTS_READY_TIMEOUT_MS, 'agents ONLINE'),
    controlPlane.failed,
  );
  progress(`${agents.length} agents ONLINE (capacity ${capacity} each); setting up the sessions`);
  const tenant: BenchTenant = await guarded(
    signUpTenant(controlPlane.httpUrl, controlPlane.grpcUrl, 'send'),
    controlPlane.failed,
  );
  const { ids, figures: setup } = await createWorkingSessions({
    tenant,
    count: options.sessions,
    concurrency: options.setupConcurrency,
    timeoutMs: 300_000 + options.sessions * 200,
    failed: controlPlane.failed,
    progress,
  });
  progress(
    `${ids.length} sessions WORKING after ${setup.workingS.toFixed(1)} s; 1 s to settle, 3 s idle, then sending`,
  );
  await guarded(sleep(1000), controlPlane.failed);
  // What the sessions cost with nothing sent, to tell it apart from what the sends cost.
  const idleWindow = await CpuWindow.start(
    { server: [controlPlane.pid], agents: agents.map((agent) => agent.pid) },
    () => controlPlane.databaseBackends(),
  );
  await guarded(sleep(3000), controlPlane.failed);
  const idle = await idleWindow.end();
  // Open-loop steps at fractions of the floor's rate: the sustained
  // throughput is the highest step whose receipts keep up.
  const floorRate = floor.load.completed / (floor.load.windowMs / 1000);
  const steps: StepFigures[] = [];
  for (const fraction of options.steps) {
    const ratePerS = Math.max(1, Math.round(floorRate * fraction));
    progress(`control plane: offering ${ratePerS} sends/s (${fraction}x the floor) for ${options.durationS} s`);
    const step = await measureStep({
      tenant,
      sessionIds: ids,
      fraction,
      ratePerS,
      windowMs: options.durationS * 1000,
      serverPid: controlPlane.pid,
      agentPids: agents.map((agent) => agent.pid),
      postgresPids: () => controlPlane.databaseBackends(),
      commits: () => controlPlane.databaseCommits(),
      failed: controlPlane.failed,
    });
    steps.push(step);
    progress(
      `  accepted ${step.load.accepted}/${step.load.offered}, last READ ` +
        `${step.readLagS === undefined ? 'not within 60 s' : `${step.readLagS.toFixed(1)} s`} after the window`,
    );
    if (!sustained(step)) break;
    await guarded(sleep(1000), controlPlane.failed);
  }
  const exited = agents.filter((agent) => !agent.running);
  await run.cleanUp();

  const problems: string[] = [];
  const floorFailures = [...floor.load.errors.values()].reduce((a, b) => a + b, 0);
  if (floorFailures > 0) problems.push(`${floorFailures} SendText calls failed on the floor`);
  if (floor.load.completed === 0) problems.push('no SendText answered in the window on the floor');
  if (steps[0] && !sustained(steps[0])) problems.push(`not even the first step (${steps[0].fraction}x) was sustained`);
  if (exited.length > 0) problems.push(`${exited.length} agents exited during the run`);
  return {
    report: formatReport(steps, floor, {
      sessions: options.sessions,
      agents: options.agents,
      concurrency: options.concurrency,
      warmupS: options.warmupS,
      durationS: options.durationS,
      setup,
      idle,
    }),
    problems,
  };
}

/** Drives the load at one server and takes CPU readings over exactly the window. */
async function measureSide(options: {
  grpcUrl: string;
  credential: string;
  sessionIds: readonly string[];
  concurrency: number;
  warmupMs: number;
  windowMs: number;
  serverPid: number;
  agentPids: number[];
  postgresPids?: () => Promise<number[]>;
  commits?: () => Promise<number>;
  failed: Promise<never>;
}): Promise<SideFigures> {
  const messages = createClient(MessageService, tenantTransport(options.grpcUrl, options.credential));
  let window: CpuWindow | undefined;
  let cpu: SideFigures['cpu'] | undefined;
  let commitsBefore = NaN;
  let commits = NaN;
  const result = await guarded(
    driveSends({
      messages,
      sessionIds: options.sessionIds,
      concurrency: options.concurrency,
      warmupMs: options.warmupMs,
      windowMs: options.windowMs,
      onWindow: async (edge) => {
        if (edge === 'start') {
          commitsBefore = (await options.commits?.()) ?? NaN;
          window = await CpuWindow.start(
            { server: [options.serverPid], agents: options.agentPids },
            options.postgresPids,
          );
        } else {
          cpu = await window?.end();
          commits = ((await options.commits?.()) ?? NaN) - commitsBefore;
        }
      },
    }),
    options.failed,
  );
  if (!cpu) throw new Error('no CPU reading over the window');
  return { load: result, cpu, commits };
}

/** One open-loop step at the control plane: CPU over the window, then receipts and end-to-end times. */
async function measureStep(options: {
  tenant: BenchTenant;
  sessionIds: readonly string[];
  fraction: number;
  ratePerS: number;
  windowMs: number;
  serverPid: number;
  agentPids: number[];
  postgresPids: () => Promise<number[]>;
  commits: () => Promise<number>;
  failed: Promise<never>;
}): Promise<StepFigures> {
  let window: CpuWindow | undefined;
  let cpu: StepFigures['cpu'] | undefined;
  let commitsBefore = NaN;
  let commits = NaN;
  const load = await guarded(
    driveOpenLoop({
      messages: options.tenant.messages,
      sessionIds: options.sessionIds,
      ratePerS: options.ratePerS,
      windowMs: options.windowMs,
      maxInFlight: 4096,
      // About 500 messages followed to DELIVERED per step.
      sampleEvery: Math.max(1, Math.floor((options.ratePerS * options.windowMs) / 1000 / 500)),
      onWindow: async (edge) => {
        if (edge === 'start') {
          commitsBefore = await options.commits();
          window = await CpuWindow.start(
            { server: [options.serverPid], agents: options.agentPids },
            options.postgresPids,
          );
        } else {
          cpu = await window?.end();
          commits = (await options.commits()) - commitsBefore;
        }
      },
    }),
    options.failed,
  );
  if (!cpu) throw new Error('no CPU reading over the window');
  const readLagS = await guarded(untilRead(options.tenant, load.lastMessageIds, RECEIPTS_TIMEOUT_MS), options.failed);
  const toDelivered = await guarded(endToEndDelivered(options.tenant, load.sampledIds), options.failed);
  return { fraction: options.fraction, ratePerS: options.ratePerS, load, cpu, commits, readLagS, toDelivered };
}

/** Milliseconds from acceptance (created_at) to DELIVERED (delivered_at) of each message that got there. */
async function endToEndDelivered(tenant: BenchTenant, ids: readonly string[]): Promise<Distribution> {
  const samples: number[] = [];
  for (const id of ids) {
    const { message } = await tenant.messages.getMessage({ messageId: id }, { timeoutMs: 30_000 });
    if (message?.createdAt && message.deliveredAt) {
      samples.push(timestampMs(message.deliveredAt) - timestampMs(message.createdAt));
    }
  }
  return distribution(samples);
}

function spawnAgents(
  count: number,
  spec: {
    bundle: string;
    prefix: string;
    address: string;
    joinToken: string;
    stateDir: string;
    extraArgs: string[];
  },
): AgentProcess[] {
  return Array.from({ length: count }, (_, i) => {
    const name = `${spec.prefix}${String(i).padStart(3, '0')}`;
    return AgentProcess.spawn({
      bundle: spec.bundle,
      name,
      controlPlane: spec.address,
      joinToken: spec.joinToken,
      stateDir: spec.stateDir,
      logFile: join(spec.stateDir, `${name}.log`),
      labels: 'bench=send',
      extraArgs: spec.extraArgs,
    });
  });
}

async function stopAgents(agents: readonly AgentProcess[]): Promise<void> {
  await Promise.all(agents.map((agent) => agent.stop(STOP_GRACE_MS)));
}

/**
 * Seconds from now until every one of these messages is READ (GetMessage,
 * polled); undefined if not within the timeout. The sandbox reports READ a
 * second after the send, so this is at least that.
 */
async function untilRead(tenant: BenchTenant, ids: readonly string[], timeoutMs: number): Promise<number | undefined> {
  const startedMs = performance.now();
  const pending = new Set(ids);
  while (pending.size > 0) {
    if (performance.now() - startedMs > timeoutMs) return undefined;
    for (const id of [...pending]) {
      const { message } = await tenant.messages.getMessage({ messageId: id }, { timeoutMs: 30_000 });
      if (message?.status === MessageStatus.READ) pending.delete(id);
    }
    if (pending.size > 0) await sleep(200);
  }
  return (performance.now() - startedMs) / 1000;
}

await runBench({
  name: 'bench:send',
  options: sendOptions,
  describe: (o) =>
    `${o.sessions} sessions on ${o.agents} agents, ${o.concurrency} sends in flight, ` +
    `${o.warmupS} s warm-up + ${o.durationS} s window`,
  services: (o) => o,
  workDir: true,
  profile: (o) => o.profile,
  run: measureSend,
});
