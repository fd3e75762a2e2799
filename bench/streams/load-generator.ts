import os from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { isMessage, sendToParent } from '../harness/ipc.js';
import type { LoadCommand, LoadEvent, LoadOptions } from './ipc.js';
import { LatencyRecorder } from './latency-recorder.js';
import { SimulatedAgent, type HostReadings } from './simulated-agent.js';

/**
 * The load generator: every simulated agent in one process, apart from the
 * servers it measures, driven by the orchestrator over IPC. Reports the
 * first stream failure at once as `failed`, so no figure is ever taken
 * from a run in which streams were erroring.
 */

// A heartbeat is "lost" when its ack is this late at the end of the window;
// a live server acks in milliseconds, so this only counts real losses.
const LOST_AFTER_MS = 5000;
const STOP_TIMEOUT_MS = 30_000;

const recorder = new LatencyRecorder();
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
const agents: SimulatedAgent[] = [];
let failed = false;
let host = readHost();
// Real agents read these per heartbeat; 1,000 simulated ones share one reading a second.
const hostTimer = setInterval(() => (host = readHost()), 1000);

function readHost(): HostReadings {
  const [one = 0, five = 0, fifteen = 0] = os.loadavg();
  return {
    loadAverage: [one, five, fifteen],
    freeMemoryBytes: os.freemem(),
    totalMemoryBytes: os.totalmem(),
    cpuCount: os.availableParallelism(),
  };
}

function report(event: LoadEvent): Promise<void> {
  return sendToParent<LoadEvent>(event);
}

function onFailure(agent: SimulatedAgent, error: Error): void {
  if (failed) return;
  failed = true;
  const others = agents.filter((a) => a !== agent && a.state === 'failed').length;
  void report({
    type: 'failed',
    message: `stream of ${agent.workerName} failed: ${error.message} (${others} other agents failed too)`,
  });
}

async function start(options: LoadOptions): Promise<void> {
  for (let i = 0; i < options.agents; i++) {
    const name = `${options.namePrefix}-${String(i).padStart(5, '0')}`;
    agents.push(
      new SimulatedAgent(name, {
        target: options.target,
        joinToken: options.joinToken,
        recorder,
        host: () => host,
        onFailure,
      }),
    );
  }
  const started = performance.now();
  let next = 0;
  // A fixed pool of connectors: at most connectConcurrency Hellos in flight.
  const connector = async () => {
    while (next < agents.length && !failed) {
      const agent = agents[next++];
      await agent?.connect(options.welcomeTimeoutMs);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(options.connectConcurrency, agents.length) }, connector));
  } catch (error) {
    if (!failed) {
      failed = true;
      await report({
        type: 'failed',
        message: `connecting agents: ${error instanceof Error ? error.message : String(error)}`,
      });
    }
    return;
  }
  await report({
    type: 'connected',
    agents: agents.filter((a) => a.state === 'live').length,
    elapsedMs: performance.now() - started,
  });
}

function windowEnd(): void {
  recorder.stop();
  const endedAt = performance.now();
  const lost = agents.reduce((sum, agent) => sum + agent.overdueHeartbeats(endedAt - LOST_AFTER_MS), 0);
  void report({
    type: 'window',
    report: {
      latency: recorder.summary(),
      heartbeatsSent: recorder.heartbeatsSent,
      heartbeatsLost: lost,
      clientLoopDelayP99Ms: loopDelay.percentile(99) / 1e6,
    },
  });
}

async function stop(): Promise<void> {
  clearInterval(hostTimer);
  let timer: NodeJS.Timeout | undefined;
  const results = await Promise.race([
    Promise.all(agents.map((agent) => agent.stop())),
    new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), STOP_TIMEOUT_MS))),
  ]);
  clearTimeout(timer);
  const cleanEnds = results ? results.filter(Boolean).length : 0;
  if (!failed && cleanEnds !== agents.length) {
    await report({
      type: 'failed',
      message: results
        ? `${agents.length - cleanEnds} of ${agents.length} streams did not end cleanly`
        : `streams still open ${STOP_TIMEOUT_MS} ms after half-close`,
    });
  } else {
    await report({ type: 'stopped', cleanEnds });
  }
  process.exit(0);
}

process.on('message', (message: unknown) => {
  if (!isMessage<LoadCommand>(message)) return;
  switch (message.type) {
    case 'start':
      void start(message.options);
      break;
    case 'window-start':
      loopDelay.reset();
      loopDelay.enable();
      recorder.start();
      break;
    case 'window-end':
      windowEnd();
      break;
    case 'stop':
      void stop();
      break;
    default:
      message satisfies never;
  }
});
// The orchestrator is gone: close everything rather than load a server nobody measures.
process.on('disconnect', () => process.exit(1));
