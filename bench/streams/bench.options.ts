import { backingServiceFlags, boolean, defineOptions, integer, type OptionValues } from '../harness/options.js';

const flags = {
  // The control plane's BOOTSTRAP_JOIN_TOKEN, which the agents enrol with, allows 10,000 uses.
  agents: integer({
    help: 'simulated agents, one HTTP/2 connection and stream each',
    env: 'BENCH_AGENTS',
    default: 1000,
    min: 1,
    max: 10_000,
  }),
  /** Seconds of steady state measured, after every agent is connected and the warm-up is over. */
  durationS: integer({
    flag: 'duration',
    unit: 's',
    help: 'steady-state window measured',
    env: 'BENCH_DURATION_S',
    default: 60,
    min: 1,
    max: 3600,
  }),
  /** Seconds between "all connected" and the window, so the ramp's garbage and JIT settle first. */
  warmupS: integer({
    flag: 'warmup',
    unit: 's',
    help: 'wait between "all connected" and the window',
    env: 'BENCH_WARMUP_S',
    default: 5,
    min: 0,
    max: 600,
  }),
  connectConcurrency: integer({
    help: 'Hellos in flight while connecting',
    env: 'BENCH_CONNECT_CONCURRENCY',
    default: 50,
    min: 1,
    max: 1000,
  }),
  /** Embedded PGlite and the in-process store instead of the machine's PostgreSQL and Redis. */
  embedded: boolean({
    help: 'embedded PGlite and in-process store, no PostgreSQL or Redis',
    env: 'BENCH_EMBEDDED',
  }),
  ...backingServiceFlags('postgres://postgres@127.0.0.1:5432/postgres'),
  /** Write a V8 CPU profile of each server into the run's folder, which is then kept. */
  profile: boolean({ help: 'write CPU profiles of both servers (.cpuprofile) and keep the run folder' }),
};

/** The run's settings, compiled once from flags and environment (flags win), defaults applied. */
export type BenchOptions = OptionValues<typeof flags>;

export const benchOptions = defineOptions({ command: 'npm run bench:streams', flags });
