import { backoffDelay, type BackoffPolicy } from '../../lib/backoff.js';
import type { Clock } from '../../lib/clock.js';
import type { Logger } from '../../lib/logger.js';
import type { Random } from '../../lib/random.js';
import type { Scheduler, Timer } from '../../lib/timers.js';

/** How a child agent process ended. */
export interface AgentExit {
  code: number | null;
  signal: string | null;
}

/** One running agent process, as the supervisor sees it. */
export interface ChildAgent {
  /** Settles once the process has exited, however it exited. */
  readonly exited: Promise<AgentExit>;
  /** Asks it to stop (and makes sure it does); resolves once it has exited. */
  stop(): Promise<void>;
}

export interface LocalAgentSupervisorDeps {
  /** Starts an agent that enrols with `joinToken` when it holds no valid credential. */
  spawn(joinToken: string): ChildAgent;
  /** A fresh single-use join token for the next start. */
  joinToken(): Promise<string>;
  clock: Clock;
  scheduler: Scheduler;
  random: Random;
  logger: Logger;
  /** Delays between restarts; they grow while the agent keeps exiting soon after starting. */
  backoff?: BackoffPolicy;
  /** An agent that ran this long before exiting restarts after the first delay again. */
  stableAfterMs?: number;
}

export const RESTART_BACKOFF: BackoffPolicy = { initialMs: 1000, maxMs: 30_000, multiplier: 2 };
const STABLE_AFTER_MS = 60_000;

/** The agent's exit codes (agent/main.ts), as a developer reads them. */
const EXIT_MEANINGS: Record<number, string> = {
  0: 'it stopped (a Shutdown command, or its drain ended)',
  1: 'it failed to stop cleanly',
  2: 'its configuration was refused',
  3: 'it was removed from the fleet; it enrols again as a new worker',
};

/**
 * Keeps the developer setup's one local agent running. With a single worker,
 * ShutdownWorker or RemoveWorker would otherwise leave every session waiting
 * PENDING until `npm start` is restarted; here the agent comes back on its
 * own (with its stored credential, or enrolled afresh when that was revoked),
 * after a delay that grows while it keeps exiting, so a crash loop does not
 * spin. Production has a real supervisor (Kubernetes, systemd) instead.
 */
export class LocalAgentSupervisor {
  private current: ChildAgent | undefined;
  private restartTimer: Timer | undefined;
  private failures = 0;
  private startedAtMs = 0;
  private stopped = false;

  constructor(private readonly deps: LocalAgentSupervisorDeps) {}

  /** Starts the agent; resolves once its process is spawned. */
  start(): Promise<void> {
    return this.launch();
  }

  /** Stops the agent and any pending restart; resolves once the process has exited. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.restartTimer?.cancel();
    await this.current?.stop();
  }

  private async launch(): Promise<void> {
    this.restartTimer = undefined;
    if (this.stopped) return;
    let token: string;
    try {
      token = await this.deps.joinToken();
    } catch (error) {
      this.deps.logger.error({ err: error }, 'could not make a join token for the local agent');
      this.scheduleRestart();
      return;
    }
    if (this.stopped) return;
    const child = this.deps.spawn(token);
    this.current = child;
    this.startedAtMs = this.deps.clock.monotonicMs();
    void child.exited.then((exit) => this.onExit(child, exit));
  }

  private onExit(child: ChildAgent, exit: AgentExit): void {
    if (this.current === child) this.current = undefined;
    if (this.stopped) return;
    if (this.deps.clock.monotonicMs() - this.startedAtMs >= (this.deps.stableAfterMs ?? STABLE_AFTER_MS)) {
      this.failures = 0;
    }
    const delayMs = this.scheduleRestart();
    const meaning =
      exit.code !== null ? (EXIT_MEANINGS[exit.code] ?? 'it crashed') : `it was killed (${exit.signal ?? 'signal'})`;
    this.deps.logger.warn(
      { code: exit.code, signal: exit.signal, restartInMs: delayMs },
      `local agent exited: ${meaning}; starting it again`,
    );
  }

  private scheduleRestart(): number {
    const delayMs = backoffDelay(this.failures++, this.deps.backoff ?? RESTART_BACKOFF, this.deps.random);
    this.restartTimer = this.deps.scheduler.schedule(delayMs, () => void this.launch());
    return delayMs;
  }
}
