import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isMessage, sendToChild } from './ipc.js';

const repositoryRoot = fileURLToPath(new URL('../../', import.meta.url));

/** How to start one of a bench's processes. */
export interface BenchChildOptions {
  /** For error messages: "control plane", "floor", "load generator". */
  name: string;
  /** TypeScript entry, e.g. `new URL('./floor.server.ts', import.meta.url)`. */
  entry: URL;
  env: NodeJS.ProcessEnv;
  /** stdout and stderr go here, so a failing run can be diagnosed afterwards. */
  logFile: string;
  /** Extra Node flags, e.g. --cpu-prof (which NODE_OPTIONS refuses). */
  nodeArgs?: string[];
}

type Waiter<Event> = { type: string; resolve: (event: Event) => void };

/**
 * A process a bench started and measures or drives. Every wait on it
 * fails as soon as the process reports a failure or exits unexpectedly, so
 * the bench can never carry on measuring something that is no longer there.
 */
export class BenchChild<Command extends { type: string }, Event extends { type: string }> {
  /** Rejects when the process reports `failed` or exits before stop(); never resolves. */
  readonly failed: Promise<never>;
  private readonly inbox: Event[] = [];
  private readonly waiters = new Set<Waiter<Event>>();
  private stopping = false;
  private fail: (error: Error) => void = () => {};

  private constructor(
    private readonly child: ChildProcess,
    readonly name: string,
    readonly logFile: string,
  ) {
    this.failed = new Promise<never>((_, reject) => (this.fail = reject));
    // Races observe `failed` on their own; this keeps an unobserved failure
    // from crashing the orchestrator before it can clean up.
    this.failed.catch(() => {});
    child.on('message', (message: unknown) => this.receive(message));
    child.on('exit', (code, signal) => {
      if (!this.stopping)
        this.fail(new Error(`${name} exited unexpectedly (${signal ?? `code ${code}`}); see ${logFile}`));
    });
    child.on('error', (error) => this.fail(new Error(`${name}: ${error.message}`)));
  }

  /** Runs `node --import tsx <entry>` with an IPC channel; output goes to the log file. */
  static spawn<Command extends { type: string }, Event extends { type: string }>(
    options: BenchChildOptions,
  ): BenchChild<Command, Event> {
    const log = openSync(options.logFile, 'a');
    try {
      const child = spawn(
        process.execPath,
        [...(options.nodeArgs ?? []), '--import', 'tsx', fileURLToPath(options.entry)],
        {
          cwd: repositoryRoot,
          env: options.env,
          stdio: ['ignore', log, log, 'ipc'],
        },
      );
      return new BenchChild<Command, Event>(child, options.name, options.logFile);
    } finally {
      closeSync(log);
    }
  }

  get pid(): number {
    const pid = this.child.pid;
    if (pid === undefined) throw new Error(`${this.name} has no pid (did it start?)`);
    return pid;
  }

  send(command: Command): void {
    sendToChild(this.child, command);
  }

  /** The next event of `type` (buffered ones first); fails on timeout or if the process fails first. */
  next<T extends Event['type']>(type: T, timeoutMs: number): Promise<Extract<Event, { type: T }>> {
    const index = this.inbox.findIndex((event) => event.type === type);
    if (index >= 0) {
      const [event] = this.inbox.splice(index, 1);
      return Promise.resolve(event as Extract<Event, { type: T }>);
    }
    let timer: NodeJS.Timeout | undefined;
    let waiter: Waiter<Event> | undefined;
    const arrived = new Promise<Extract<Event, { type: T }>>((resolve) => {
      waiter = { type, resolve: (event) => resolve(event as Extract<Event, { type: T }>) };
      this.waiters.add(waiter);
    });
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${this.name}: no "${type}" within ${timeoutMs} ms; see ${this.logFile}`)),
        timeoutMs,
      );
    });
    return Promise.race([arrived, timedOut, this.failed]).finally(() => {
      clearTimeout(timer);
      if (waiter) this.waiters.delete(waiter);
    });
  }

  /**
   * Asks the process to finish (IPC `stop` if it listens for one, and
   * SIGTERM), then kills it after `graceMs`. Resolves with its exit code.
   */
  async stop(graceMs: number, command?: Command): Promise<number | null> {
    this.stopping = true;
    const child = this.child;
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    if (command) this.send(command);
    else child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    try {
      return await exited;
    } finally {
      clearTimeout(timer);
    }
  }

  private receive(message: unknown): void {
    if (!isMessage<Event>(message)) return;
    if (message.type === 'failed') {
      const detail = 'message' in message && typeof message.message === 'string' ? message.message : 'no detail';
      this.fail(new Error(`${this.name} failed: ${detail}`));
      return;
    }
    for (const waiter of this.waiters) {
      if (waiter.type === message.type) {
        this.waiters.delete(waiter);
        waiter.resolve(message);
        return;
      }
    }
    this.inbox.push(message);
  }
}
