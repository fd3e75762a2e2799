import { backingServiceFlags, boolean, defineOptions, integer, type OptionValues } from '../harness/options.js';

const flags = {
  /** Real agent processes started, all of which must be ONLINE before any is signalled. */
  // Each agent is a Node process of about 70 MiB; the bootstrap join token allows 10,000 enrolments.
  agents: integer({ help: 'real agent processes', env: 'BENCH_FAILOVER_AGENTS', default: 100, min: 1, max: 1000 }),
  /** Agents sent SIGKILL: the kernel closes their sockets, so the control plane sees the connection go. */
  kill: integer({ help: 'agents sent SIGKILL', env: 'BENCH_FAILOVER_KILL', default: 10, min: 0, max: 1000 }),
  /** Agents sent SIGSTOP: their sockets stay open and silent, so only the lease can tell. */
  freeze: integer({
    help: 'agents sent SIGSTOP, each with a SIGKILL',
    env: 'BENCH_FAILOVER_FREEZE',
    default: 10,
    min: 0,
    max: 1000,
  }),
  /**
   * The signals are spread evenly over this many milliseconds (undefined: one
   * sweep interval), so the detections sample every phase of the sweeper's
   * tick instead of all landing on the same one.
   */
  spreadMs: integer({
    flag: 'spread',
    unit: 'ms',
    help: 'spread the signals evenly over this long; 0 sends all at once',
    env: 'BENCH_FAILOVER_SPREAD_MS',
    default: undefined,
    defaultText: "the control plane's SWEEP_INTERVAL_MS",
    min: 0,
    max: 60_000,
  }),
  /** Seconds after its signal during which an agent's detection counts, and the others must stay ONLINE. */
  capS: integer({
    flag: 'cap',
    unit: 's',
    help: 'how long after its signal a detection counts',
    env: 'BENCH_FAILOVER_CAP_S',
    default: 30,
    min: 1,
    max: 600,
  }),
  /** Seconds between "all ONLINE" and the signals, so start-up CPU is over and every agent has heartbeated. */
  settleS: integer({
    flag: 'settle',
    unit: 's',
    help: 'wait between "all ONLINE" and the signals',
    env: 'BENCH_FAILOVER_SETTLE_S',
    default: 5,
    min: 0,
    max: 600,
  }),
  /** Agents started but not yet ONLINE at once: bounds the start-up load on a small machine. */
  startConcurrency: integer({
    help: 'agents starting at once',
    env: 'BENCH_FAILOVER_START_CONCURRENCY',
    default: 8,
    min: 1,
    max: 1000,
  }),
  /** Exit 1 when a detection target is missed, not only when a worker is not detected at all. */
  strict: boolean({ help: 'also exit 1 when a p99 misses its target', env: 'BENCH_FAILOVER_STRICT' }),
  ...backingServiceFlags(),
};

/** The run's settings, compiled once from flags and environment (flags win), defaults applied. */
export type FailoverOptions = OptionValues<typeof flags>;

export const failoverOptions = defineOptions({
  command: 'npm run bench:failover-detect',
  flags,
  check: (o) => {
    if (o.kill + o.freeze === 0) return '--kill and --freeze: kill or freeze at least one agent';
    if (o.kill + o.freeze > o.agents) return `--kill + --freeze must not exceed the ${o.agents} agents`;
    return undefined;
  },
  notes: `The control plane runs with its default timing unless LEASE_TTL_MS, HEARTBEAT_INTERVAL_MS,
FAILURE_GRACE_MS or SWEEP_INTERVAL_MS are set in the environment.`,
});
