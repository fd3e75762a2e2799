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
