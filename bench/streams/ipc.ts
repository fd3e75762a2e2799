import type { ChildProcess } from 'node:child_process';

/** What the load generator needs to know; sent once, in its `start` command. */
export interface LoadOptions {
  /** h2c base URL of the server under test, e.g. http://127.0.0.1:50051. */
  target: string;
  agents: number;
  /** Worker names are `<namePrefix>-<index>`, so a run's workers are easy to find and never collide. */
  namePrefix: string;
  /** Hellos in flight at once while connecting, so the ramp measures admission, not a thundering herd. */
  connectConcurrency: number;
  /** How long one agent may wait for its Welcome before the run fails. */
  welcomeTimeoutMs: number;
  /** Presented in every Hello, as a real agent enrols; the floor ignores it. */
  joinToken: string;
}

/** Round-trip figures of the heartbeats acknowledged inside the steady window. */
export interface LatencySummary {
  count: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

/** What the load generator saw during the steady window. */
export interface WindowReport {
  latency: LatencySummary;
  heartbeatsSent: number;
  /** Heartbeats sent more than a few seconds before the window ended and still not acknowledged. */
  heartbeatsLost: number;
  /** The load generator's own event-loop delay (p99); a high value means its timings are inflated. */
  clientLoopDelayP99Ms: number;
}

/** Orchestrator -> load generator. */
export type LoadCommand =
  { type: 'start'; options: LoadOptions } | { type: 'window-start' } | { type: 'window-end' } | { type: 'stop' };

/** Load generator -> orchestrator. `failed` is fatal: the run stops and says why. */
export type LoadEvent =
  | { type: 'connected'; agents: number; elapsedMs: number }
  | { type: 'window'; report: WindowReport }
  | { type: 'stopped'; cleanEnds: number }
  | { type: 'failed'; message: string };

/** Server under test -> orchestrator, once it listens. */
export type ServerEvent = { type: 'ready'; grpcUrl: string; httpUrl?: string } | { type: 'failed'; message: string };

/** Orchestrator -> server under test. */
export type ServerCommand = { type: 'stop' };

/**
 * Narrows an IPC payload to our message shape. Both ends are this bench's
 * own code, so checking the discriminant is enough.
 */
export function isMessage<T extends { type: string }>(value: unknown): value is T {
  return typeof value === 'object' && value !== null && 'type' in value && typeof value.type === 'string';
}

/**
 * Sends a typed message to the parent process (no-op when there is none, as
 * when run by hand). Resolves once it is handed over, so a process may exit
 * right after without losing its last word.
 */
export function sendToParent<T extends { type: string }>(message: T): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send || !process.connected) return resolve();
    process.send(message, undefined, undefined, () => resolve());
  });
}

/** Sends a typed message to a child; the child may already be gone when a run is failing. */
export function sendToChild<T extends { type: string }>(child: ChildProcess, message: T): void {
  if (child.connected) child.send(message);
}
