import {
  backingServiceFlags,
  boolean,
  defineOptions,
  integer,
  numberList,
  type OptionValues,
} from '../harness/options.js';

const flags = {
  /** WORKING sessions the messages go through. */
  sessions: integer({
    help: 'WORKING sessions sent through',
    env: 'BENCH_SEND_SESSIONS',
    default: 1000,
    min: 1,
    max: 100_000,
  }),
  /** Real agent processes (and as many floor agents). */
  agents: integer({
    help: 'agent processes, capacity sessions/agents each',
    env: 'BENCH_SEND_AGENTS',
    default: 10,
    min: 1,
    max: 200,
  }),
  /** Offered rates, as fractions of the floor's rate, tried in order until one is not sustained. */
  steps: numberList({
    help: "open-loop rates at the control plane, as fractions of the floor's rate",
    env: 'BENCH_SEND_STEPS',
    default: [0.25, 0.5, 0.75, 1],
    min: 0.01,
    max: 10,
  }),
  /** SendText calls in flight at all times on the floor (closed loop). */
  concurrency: integer({
    help: 'SendText calls in flight on the floor',
    env: 'BENCH_SEND_CONCURRENCY',
    default: 64,
    min: 1,
    max: 10_000,
  }),
  warmupS: integer({
    flag: 'warmup',
    unit: 's',
    help: 'sending before the window opens',
    env: 'BENCH_SEND_WARMUP_S',
    default: 5,
    min: 0,
    max: 600,
  }),
  durationS: integer({
    flag: 'duration',
    unit: 's',
    help: 'each measured window (the floor, then every step)',
    env: 'BENCH_SEND_DURATION_S',
    default: 10,
    min: 1,
    max: 3600,
  }),
  /** CreateSession and ScanQr calls in flight while the sessions are set up. */
  setupConcurrency: integer({
    help: 'CreateSession / ScanQr calls in flight during set-up',
    env: 'BENCH_SEND_SETUP_CONCURRENCY',
    default: 32,
    min: 1,
    max: 1000,
  }),
  /** Write V8 CPU profiles of the control plane and the floor server into the run's folder, which is kept. */
  profile: boolean({ help: 'write CPU profiles (.cpuprofile) of both servers and keep the run folder' }),
  ...backingServiceFlags(),
};

/** The run's settings, compiled once from flags and environment (flags win), defaults applied. */
export type SendOptions = OptionValues<typeof flags>;

export const sendOptions = defineOptions({ command: 'npm run bench:send', flags });
