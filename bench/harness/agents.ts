import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
// esbuild is what tsx compiles with, so it is installed wherever tsx is.
import { build } from 'esbuild';

const agentMain = fileURLToPath(new URL('../../agent/main.ts', import.meta.url));

/**
 * Bundles `entry` (default agent/main.ts) and everything it imports into one ESM file that
 * plain `node` runs. A hundred `--import tsx` starts would each compile the
 * agent again (about 0.8 s of CPU apiece); the bundle starts in about 0.2 s.
 * The code is the same: only the loading differs.
 */
export async function bundleAgent(outDir: string, entry = agentMain, name = 'agent.mjs'): Promise<string> {
  const outfile = join(outDir, name);
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    logLevel: 'error',
    // grpc-js and pino are CommonJS and call require(), which ESM lacks.
    banner: {
      js: "import { createRequire as __benchCreateRequire } from 'node:module'; const require = __benchCreateRequire(import.meta.url);",
    },
  });
  return outfile;
}

/** How to start one agent, as an operator would: flags for what differs per worker, JOIN_TOKEN in the environment. */
export interface AgentSpec {
  bundle: string;
  name: string;
  /** host:port of the control plane's gRPC listener. */
  controlPlane: string;
  joinToken: string;
  /** Shared by all agents: each keeps its credential in `<name>.credential`. */
  stateDir: string;
  logFile: string;
  /** Placement labels (default bench=failover-detect). */
  labels?: string;
  /** Further flags, e.g. ['--capacity', '100']. */
  extraArgs?: readonly string[];
}

/**
 * What the bench did to an agent: `running` until it is signalled; `killed`
 * and `frozen` are the faults under test; `stopping` is the clean-up.
 */
export type AgentFate = 'running' | 'killed' | 'frozen' | 'stopping';

/** One real agent process (agent/main.ts), its output in its own log file. */
export class AgentProcess {
  private _fate: AgentFate = 'running';
  /** Why it exited on its own (it was not signalled); undefined while it runs or after a signal ended it. */
  unexpectedExit: string | undefined;
  readonly exited: Promise<void>;

  private constructor(
    private readonly child: ChildProcess,
    readonly name: string,
    readonly logFile: string,
  ) {
    this.exited = new Promise<void>((resolve) => {
      child.once('exit', (code, signal) => {
        if (this._fate === 'running') this.unexpectedExit = `exited on its own (${signal ?? `code ${code}`})`;
        resolve();
      });
    });
    child.on('error', (error) => {
      this.unexpectedExit ??= error.message;
    });
  }

  static spawn(spec: AgentSpec): AgentProcess {
    const log = openSync(spec.logFile, 'a');
    try {
      const child = spawn(
        process.execPath,
        [
          spec.bundle,
          '--control-plane',
          spec.controlPlane,
          '--name',
          spec.name,
          '--labels',
          spec.labels ?? 'bench=failover-detect',
          '--state-dir',
          spec.stateDir,
          '--log-format',
          'json',
          ...(spec.extraArgs ?? []),
        ],
        {
          env: { ...process.env, JOIN_TOKEN: spec.joinToken, AGENT_LOG_LEVEL: 'info' },
          // The IPC channel is only there so the agent stops itself (its
          // 'disconnect' handler) if the bench dies without cleaning up.
          stdio: ['ignore', log, log, 'ipc'],
        },
      );
      return new AgentProcess(child, spec.name, spec.logFile);
    } finally {
      closeSync(log);
    }
  }

  get pid(): number {
    const pid = this.child.pid;
    if (pid === undefined) throw new Error(`agent ${this.name} has no pid (did it start?)`);
    return pid;
  }

  get fate(): AgentFate {
    return this._fate;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /**
   * Sends the fault signal and returns the monotonic time it was sent: taken
   * just before the kill(2) call, which delivers synchronously.
   */
  inflict(fault: 'killed' | 'frozen'): number {
    if (this._fate !== 'running') throw new Error(`${this.name} was already ${this._fate}`);
    this._fate = fault;
    const sentAtMs = performance.now();
    this.child.kill(fault === 'killed' ? 'SIGKILL' : 'SIGSTOP');
    return sentAtMs;
  }

  /**
   * Ends the process whatever its state: a frozen one is continued and
   * killed (it would only fence itself and reconnect); a running one is asked
   * to stop cleanly and killed after `graceMs`.
   */
  async stop(graceMs: number): Promise<void> {
    const wasFrozen = this._fate === 'frozen';
    if (this._fate === 'running') this._fate = 'stopping';
    if (!this.running) return this.exited;
    if (wasFrozen) {
      this.child.kill('SIGCONT');
      this.child.kill('SIGKILL');
    } else {
      this.child.kill('SIGTERM');
    }
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    try {
      await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}
