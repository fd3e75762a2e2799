import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { ensureServices } from './backing-services.js';
import { interrupted } from './interrupt.js';
import { describeMachine, measureMachineCpu } from './measure.js';
import { BenchOptionsError, type BenchFlags } from './options.js';

/** Idle-machine CPU above which a run warns that something else competes for the cores. */
const BUSY_MACHINE_PERCENT = 15;
/** How long the machine is watched before the run, to say how busy it already was. */
const BUSY_WINDOW_MS = 2000;

/** What a bench's body is handed: the run's identity and folder, progress, and clean-up. */
export interface BenchRun {
  /** `bench:send`: prefixes every progress line. */
  readonly name: string;
  /** Random per run: names the run's database, key prefix and workers, so runs never collide. */
  readonly runId: string;
  /** The run's folder (logs, bundles, profiles); kept when the run fails. Only for benches that ask for one. */
  readonly workDir: string;
  readonly machine: string;
  /** The whole machine's CPU in the 2 s before the run, in percent of one core. */
  readonly busyBeforePercent: number;
  /** One timestamped line on stderr, so stdout carries only the report. */
  readonly progress: (message: string) => void;
  /** Registers a clean-up; they run last first when the run ends, however it ends (Ctrl-C too). */
  defer(cleanup: () => Promise<unknown> | void): void;
  /** Runs the clean-ups registered so far, now: between two halves of a run that must not overlap. */
  cleanUp(): Promise<void>;
  /** Node flags that write a CPU profile of one child into the run folder when the run profiles, else none. */
  profileArgs(name: string): string[];
}

/** What a run prints on stdout: the title, lines about the set-up, the machine line, then the body. */
export interface BenchReport {
  title: string;
  /** Set-up lines printed between the title and the machine line. */
  context?: string[];
  /** Everything after the machine line; start it with '\n' for a blank line. */
  body: string;
}

/** How a run ended: a report to print (if it got that far), and what went wrong (any entry exits 1). */
export interface BenchOutcome {
  report?: BenchReport;
  problems?: string[];
}

/** One bench, declared: its flags, what it needs, and what it measures. */
export interface BenchDefinition<V> {
  name: string;
  options: BenchFlags<V>;
  /** One line on what this run will do, logged at the start. */
  describe(options: V): string;
  /** The PostgreSQL and Redis the run needs, checked before anything starts; none when omitted. */
  services?(options: V): { postgresUrl?: string; redisUrl?: string };
  /** Whether the run needs a folder (BenchRun.workDir). */
  workDir?: boolean;
  /** Whether this run writes CPU profiles (then its folder is kept even on success). */
  profile?(options: V): boolean;
  run(options: V, run: BenchRun): Promise<BenchOutcome> | BenchOutcome;
}

/**
 * Runs one bench as a command and exits: flags (--help, or one line and
 * exit 2 when one is wrong), PostgreSQL and Redis checked, the machine
 * described and how busy it is, the body, the report on stdout, the
 * problems (exit 1), the clean-ups, and the run folder removed or kept.
 */
export async function runBench<V>(definition: BenchDefinition<V>): Promise<never> {
  process.exitCode = await run(definition);
  // Keep-alive sockets, agents' channels and IPC would otherwise hold the process open.
  process.exit();
}

async function run<V>(definition: BenchDefinition<V>): Promise<number> {
  const { name } = definition;
  const progress = (message: string) =>
    process.stderr.write(`[${name} ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
  let options: V | 'help';
  try {
    options = definition.options.parse(process.argv.slice(2), process.env);
  } catch (error) {
    if (!(error instanceof BenchOptionsError)) throw error;
    process.stderr.write(`${name}: ${error.message} (--help lists every flag)\n`);
    return 2;
  }
  if (options === 'help') {
    process.stdout.write(definition.options.usage());
    return 0;
  }

  const started = performance.now();
  const runId = randomBytes(4).toString('hex');
  const workDir = definition.workDir ? mkdtempSync(join(os.tmpdir(), `sb-${name.replace(/\W+/g, '-')}-${runId}-`)) : '';
  const profiling = definition.profile?.(options) ?? false;
  const cleanups: (() => Promise<unknown> | void)[] = [];
  const cleanUp = async () => {
    for (const cleanup of cleanups.splice(0).reverse()) {
      try {
        await cleanup();
      } catch (error) {
        progress(`cleanup failed: ${message(error)}`);
      }
    }
  };
  let succeeded = false;
  try {
    const machine = describeMachine();
    progress(machine);
    progress(`${definition.describe(options)}${workDir ? `; logs in ${workDir}` : ''}`);
    await ensureServices(definition.services?.(options) ?? {});
    // Another process busy on a 2-vCPU machine skews every figure: say so up front.
    const busyBeforePercent = await measureMachineCpu(BUSY_WINDOW_MS);
    progress(`machine busy before start: ${busyBeforePercent.toFixed(0)}% of one core`);
    if (busyBeforePercent > BUSY_MACHINE_PERCENT) {
      progress(
        `WARNING: the machine is already busy (over ${BUSY_MACHINE_PERCENT}% of one core); figures will be noisy`,
      );
    }
    const outcome = await definition.run(options, {
      name,
      runId,
      get workDir() {
        if (!workDir) throw new Error(`${name} asked for no run folder`);
        return workDir;
      },
      machine,
      busyBeforePercent,
      progress,
      defer: (cleanup) => {
        // From the first thing to clean up on, Ctrl-C unwinds through the clean-ups.
        void interrupted();
        cleanups.push(cleanup);
      },
      cleanUp,
      profileArgs: (child) =>
        profiling && workDir ? ['--cpu-prof', `--cpu-prof-dir=${join(workDir, `${child}-profile`)}`] : [],
    });
    if (outcome.report) process.stdout.write(formatReport(outcome.report, machine, busyBeforePercent));
    const problems = outcome.problems ?? [];
    for (const problem of problems) progress(`FAILED: ${problem}`);
    succeeded = problems.length === 0;
    return succeeded ? 0 : 1;
  } catch (error) {
    progress(`FAILED: ${message(error)}`);
    return 1;
  } finally {
    await cleanUp();
    if (workDir) {
      // A run that failed before writing anything leaves nothing worth keeping.
      if (!succeeded && readdirSync(workDir).length === 0) rmSync(workDir, { recursive: true, force: true });
      else if (!succeeded) progress(`logs kept in ${workDir}`);
      else if (profiling) progress(`CPU profiles in ${workDir}`);
      else rmSync(workDir, { recursive: true, force: true });
    }
    progress(`run took ${((performance.now() - started) / 1000).toFixed(0)} s`);
  }
}

function formatReport(report: BenchReport, machine: string, busyBeforePercent: number): string {
  return [
    '',
    report.title,
    ...(report.context ?? []),
    `${machine}; machine busy before start: ${busyBeforePercent.toFixed(0)}% of one core`,
    report.body,
  ].join('\n');
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
