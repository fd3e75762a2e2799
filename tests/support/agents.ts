import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, type AgentOptions, type AgentRuntime } from '../../agent/agent.js';
import { defaultBackoff } from '../../lib/backoff.js';
import { createLogger } from '../../lib/logger.js';

/**
 * An in-process agent with test-friendly timings; it enrols with `joinToken`
 * and keeps its credential in a temp folder. `runtime` puts it on a fake
 * clock (one ManualScheduler as clock and scheduler), a pinned random and an
 * in-memory control plane (tests/support/fake-control-plane.ts); default
 * real time and gRPC.
 */
export function createTestAgent(
  controlPlaneAddress: string,
  joinToken: string | undefined,
  overrides: Partial<AgentOptions> = {},
  runtime: Partial<AgentRuntime> = {},
): Agent {
  const stateDir = mkdtempSync(join(tmpdir(), 'sb-agent-'));
  const options: AgentOptions = {
    controlPlaneAddress,
    workerName: `worker-${Math.random().toString(36).slice(2, 10)}`,
    capacity: 50,
    labels: { zone: 'test-a' },
    engines: ['SANDBOX'],
    version: '0.1.0-test',
    backoff: { ...defaultBackoff, initialMs: 100, maxMs: 1000 },
    keepaliveTimeMs: 20_000,
    keepaliveTimeoutMs: 10_000,
    welcomeTimeoutMs: 5_000,
    joinToken,
    credentialFile: join(stateDir, 'worker.credential'),
    drainTimeoutMs: 5_000,
    ...overrides,
  };
  return new Agent(
    options,
    createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'silent', pretty: false, name: 'agent' }),
    runtime,
  );
}

const agentMain = fileURLToPath(new URL('../../agent/main.ts', import.meta.url));

/** The real agent entry point in its own process, as operators run it (credential kept in a temp folder). */
export function spawnAgentProcess(args: string[], env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', agentMain, ...args], {
    env: {
      ...process.env,
      AGENT_LOG_LEVEL: 'info',
      AGENT_STATE_DIR: mkdtempSync(join(tmpdir(), 'sb-agent-')),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

export function waitForExit(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}
