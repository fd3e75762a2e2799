import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Agent, type AgentOptions } from '../../agent/agent.js';
import { defaultBackoff } from '../../agent/backoff.js';
import { createLogger } from '../../src/platform/logger.js';

/** An in-process agent with test-friendly timings. */
export function createTestAgent(controlPlaneAddress: string, overrides: Partial<AgentOptions> = {}): Agent {
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
    ...overrides,
  };
  return new Agent(
    options,
    createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'silent', pretty: false, name: 'agent' }),
  );
}

const agentMain = fileURLToPath(new URL('../../agent/main.ts', import.meta.url));

/** The real agent entry point in its own process, as operators run it. */
export function spawnAgentProcess(args: string[], env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', agentMain, ...args], {
    env: { ...process.env, AGENT_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

export function waitForExit(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}
