import { backingServiceFlags, boolean, defineOptions, integer, type OptionValues } from '../harness/options.js';

const flags = {
  sessions: integer({ help: 'sessions created', env: 'BENCH_SCHEDULE_SESSIONS', default: 2000, min: 1, max: 100_000 }),
  /** In-process agents, each one worker with its own stream. */
  agents: integer({ help: 'in-process agents', env: 'BENCH_SCHEDULE_AGENTS', default: 10, min: 1, max: 200 }),
  /** Sessions each agent accepts. */
  capacity: integer({
    help: 'sessions per agent',
    env: 'BENCH_SCHEDULE_CAPACITY',
    default: undefined,
    defaultText: '1.25 x sessions / agents',
    min: 1,
    max: 100_000,
  }),
  /** Tenants the sessions are spread over, round-robin (each create locks its tenant's row). */
  tenants: integer({
    help: 'tenants the sessions are spread over',
    env: 'BENCH_SCHEDULE_TENANTS',
    default: 1,
    min: 1,
    max: 1000,
  }),
  /** CreateSession calls in flight at once. */
  concurrency: integer({
    help: 'CreateSession calls in flight',
    env: 'BENCH_SCHEDULE_CONCURRENCY',
    default: 64,
    min: 1,
    max: 10_000,
  }),
  /** Fail when not every session reached its worker within this long after the first create. */
  timeoutS: integer({
    flag: 'timeout',
    unit: 's',
    help: 'fail unless every session is placed within this long',
    env: 'BENCH_SCHEDULE_TIMEOUT_S',
    default: 300,
    min: 1,
    max: 3600,
  }),
  /** Write a V8 CPU profile of the control plane into the run's folder, which is then kept. */
  profile: boolean({ help: 'write a CPU profile (.cpuprofile) of the control plane and keep the run folder' }),
  ...backingServiceFlags(),
};

/** The run's settings, compiled once from flags and environment (flags win), defaults applied. */
export type E2eOptions = Omit<OptionValues<typeof flags>, 'capacity'> & {
  /** Sessions each agent accepts; by default 1.25 x sessions / agents, so the fleet has a quarter spare. */
  capacity: number;
};

export const e2eOptions = defineOptions({
  command: 'npm run bench:schedule:e2e',
  flags,
  check: (o) =>
    o.capacity !== undefined && o.capacity * o.agents < o.sessions
      ? `--capacity ${o.capacity}: ${o.agents} agents x ${o.capacity} cannot hold ${o.sessions} sessions`
      : undefined,
  compile: (o): E2eOptions => ({ ...o, capacity: o.capacity ?? Math.ceil((1.25 * o.sessions) / o.agents) }),
});
