/**
 * bench/send: SendText throughput and latency through the whole path
 * (tenant -> control plane -> worker stream -> sandbox engine -> back), and
 * in the same run the floor: the same two hops with nothing in between.
 *
 * Control plane: the production process (bench/streams/control-plane.server.ts)
 * on real PostgreSQL (a throwaway database) and Redis (a fresh key prefix),
 * with N real agent processes (agent/main.ts bundled, the sandbox engine with
 * its default receipt timing). A tenant signs up, creates a DEVELOPER API
 * key, creates the sessions and scans each QR code through
 * SandboxService/ScanQr until all are WORKING. Then `concurrency` callers
 * send SendText over gRPC (one HTTP/2 connection), round-robin over the
 * sessions: a warm-up, then the window.
 *
 * Floor: bench/send/floor.server.ts (SendText relayed as a Request on one
 * agent's WorkerService.Connect stream, the Response relayed back; no
 * authentication, validation, database, Redis or session lookup) with as
 * many bench/send/floor.agent.ts processes (answer every Request at once),
 * driven by the same load generator with as many session ids.
 *
 *   npm run bench:send -- [--sessions 1000] [--agents 10] [--concurrency 64] [--duration 20]
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from '@connectrpc/connect';
import { MessageService, MessageStatus } from '../../gen/switchboard/v1/message_pb.js';
import { AgentProcess, bundleAgent } from '../failover-detect/agent-processes.js';
import { FleetWatch } from '../failover-detect/fleet-watch.js';
import { createProgress } from '../harness/bounded.js';
import { startControlPlaneRun, type ControlPlaneRun } from '../harness/control-plane-run.js';
import { CpuWindow, describeMachine, measureMachineCpu } from '../harness/measure.js';
import { BenchOptionsError } from '../harness/options.js';
import { signUpTenant, tenantTransport, type BenchTenant } from '../harness/tenant.js';
import { BenchChild } from '../streams/bench-child.js';
import { guarded } from '../streams/run-control.js';
import type { FloorCommand, FloorEvent } from './ipc.js';
import { formatReport, type SideFigures } from './report.js';
import { driveSends } from './send-load.js';
import { loadSendOptions, USAGE, type SendOptions } from './send.options.js';
import { createWorkingSessions } from './working-sessions.js';

const progress = createProgress('bench:send');
const AGENTS_READY_TIMEOUT_MS = 60_000;
const STOP_GRACE_MS = 10_000;
const RECEIPTS_TIMEOUT_MS = 60_000;
const floorAgentMain = fileURLToPath(new URL('./floor.agent.ts', import.meta.url));

async function main(): Promise<number> {
  let options: SendOptions | undefined;
  try {
    options = loadSendOptions(process.argv.slice(2), process.env);
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
  const workDir = mkdtempSync(join(os.tmpdir(), `sb-send-${runId}-`));
  const cleanups: (() => Promise<void>)[] = [];
  const started = performance.now();
  let succeeded = false;
  const cleanUp = async () => {
    for (const cleanup of cleanups.splice(0).reverse()) {
      await cleanup().catch((error: unknown) =>
        progress(`cleanup failed: ${error instanceof Error ? error.message : String(error)}`),
      );
    }
  };
  try {
    progress(describeMachine());
    progress(
      `${options.sessions} sessions on ${options.agents} agents, ${options.concurrency} sends in flight, ` +
        `${options.warmupS} s warm-up + ${options.durationS} s window; logs in ${workDir}`,
    );
    const busyBefore = await measureMachineCpu(2000);
    progress(`machine busy before start: ${busyBefore.toFixed(0)}% of one core`);
    const agentBundle = await guarded(bundleAgent(workDir));
    const floorBundle = await guarded(bundleAgent(workDir, floorAgentMain, 'floor-agent.mjs'));
    const stateDir = join(workDir, 'agents');
    mkdirSync(stateDir);
    const load = {
      concurrency: options.concurrency,
      warmupMs: options.warmupS * 1000,
      windowMs: options.durationS * 1000,
    };

    // ---- the floor ----
    const floorServer = BenchChild.spawn<FloorCommand, FloorEvent>({
      name: 'floor server',
      entry: '../send/floor.server.ts',
      env: process.env,
      logFile: join(workDir, 'floor-server.log'),
      nodeArgs: profileArgs(options.profile, workDir, 'floor-server'),
    });
    cleanups.push(async () => void (await floorServer.stop(STOP_GRACE_MS, { type: 'stop' })));
    const floorReady = await guarded(floorServer.next('ready', 60_000));
    const floorAgents = spawnAgents(options.agents, {
      bundle: floorBundle,
      prefix: `floor-${runId}-`,
      address: new URL(floorReady.grpcUrl).host,
      joinToken: 'unused-by-the-floor',
      stateDir,
      extraArgs: [],
    });
    cleanups.push(() => stopAgents(floorAgents));
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
    await cleanUp();

    // ---- the control plane ----
    const controlPlane: ControlPlaneRun = await startControlPlaneRun({
      postgresUrl: options.postgresUrl,
      redisUrl: options.redisUrl,
      workDir,
      progress,
      env: {
        SESSION_QUOTA_FREE: String(options.sessions),
        // Far above what the run sends: the limiter still runs (a Redis call per request) but never refuses.
        RATE_LIMIT_FREE_PER_MINUTE: '10000000',
        RATE_LIMIT_ANONYMOUS_PER_MINUTE: '10000000',
      },
      nodeArgs: profileArgs(options.profile, workDir, 'control-plane'),
    });
    cleanups.push(() => controlPlane.stop());
    progress(`control plane listening on ${controlPlane.grpcUrl} (gRPC) and ${controlPlane.httpUrl} (HTTP)`);
    const prefix = `send-${runId}-`;
    const watch = await guarded(FleetWatch.open(controlPlane.httpUrl, controlPlane.admin, prefix), controlPlane.failed);
    cleanups.push(async () => watch.close());
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
    cleanups.push(() => stopAgents(agents));
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
    const cp = await measureSide({
      ...load,
      grpcUrl: controlPlane.grpcUrl,
      credential: tenant.apiKey,
      sessionIds: ids,
      serverPid: controlPlane.pid,
      agentPids: agents.map((agent) => agent.pid),
      postgresPids: () => controlPlane.databaseBackends(),
      commits: () => controlPlane.databaseCommits(),
      failed: controlPlane.failed,
    });
    progress(`control plane: ${cp.load.completed} sends in the window; following the receipts of the last 100`);
    const receiptsReadS = await guarded(
      untilRead(tenant, cp.load.lastMessageIds, RECEIPTS_TIMEOUT_MS),
      controlPlane.failed,
    );
    const exited = agents.filter((agent) => !agent.running);
    await cleanUp();

    process.stdout.write(
      `\n${formatReport(cp, floor, {
        sessions: options.sessions,
        agents: options.agents,
        concurrency: options.concurrency,
        warmupS: options.warmupS,
        durationS: options.durationS,
        machine: describeMachine(),
        busyBeforePercent: busyBefore,
        setup,
        idle,
        receiptsReadS,
      })}`,
    );
    const problems: string[] = [];
    for (const [name, side] of [
      ['control plane', cp],
      ['floor', floor],
    ] as const) {
      const failures = [...side.load.errors.values()].reduce((a, b) => a + b, 0);
      if (failures > 0) problems.push(`${failures} SendText calls failed on the ${name}`);
      if (side.load.completed === 0) problems.push(`no SendText answered in the window on the ${name}`);
    }
    if (receiptsReadS === undefined) problems.push('receipts did not reach READ within 60 s of the window');
    if (exited.length > 0) problems.push(`${exited.length} agents exited during the run`);
    for (const problem of problems) progress(`FAILED: ${problem}`);
    if (problems.length > 0) return 1;
    succeeded = true;
    return 0;
  } catch (error) {
    progress(`FAILED: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  } finally {
    await cleanUp();
    if (succeeded && !options.profile) rmSync(workDir, { recursive: true, force: true });
    else if (succeeded) progress(`CPU profiles in ${workDir}`);
    else progress(`logs kept in ${workDir}`);
    progress(`run took ${((performance.now() - started) / 1000).toFixed(0)} s`);
  }
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

function profileArgs(profile: boolean, workDir: string, name: string): string[] {
  return profile ? ['--cpu-prof', `--cpu-prof-dir=${join(workDir, `${name}-profile`)}`] : [];
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

process.exitCode = await main();
// Keep-alive sockets and the agents' IPC channels would otherwise hold the process open.
process.exit();
