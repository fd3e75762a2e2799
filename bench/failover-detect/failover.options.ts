import { parseArgs } from 'node:util';
import { z } from 'zod';

/** The run's settings, compiled once from flags and environment (flags win), defaults applied. */
export interface FailoverOptions {
  /** Real agent processes started, all of which must be ONLINE before any is signalled. */
  agents: number;
  /** Agents sent SIGKILL: the kernel closes their sockets, so the control plane sees the connection go. */
  kill: number;
  /** Agents sent SIGSTOP: their sockets stay open and silent, so only the lease can tell. */
  freeze: number;
  /**
   * The signals are spread evenly over this many milliseconds (undefined: one
   * sweep interval), so the detections sample every phase of the sweeper's
   * tick instead of all landing on the same one.
   */
  spreadMs: number | undefined;
  /** Seconds after its signal during which an agent's detection counts, and the others must stay ONLINE. */
  capS: number;
  /** Seconds between "all ONLINE" and the signals, so start-up CPU is over and every agent has heartbeated. */
  settleS: number;
  /** Agents started but not yet ONLINE at once: bounds the start-up load on a small machine. */
  startConcurrency: number;
  /** Exit 1 when a detection target is missed, not only when a worker is not detected at all. */
  strict: boolean;
  /** A database on the PostgreSQL server where the bench may CREATE and DROP its own database. */
  postgresUrl: string;
  redisUrl: string;
}

export const USAGE = `Usage: npm run bench:failover-detect -- [options]

  --agents <n>              real agent processes (BENCH_FAILOVER_AGENTS, default 100)
  --kill <n>                agents sent SIGKILL (BENCH_FAILOVER_KILL, default 10)
  --freeze <n>              agents sent SIGSTOP, each with a SIGKILL (BENCH_FAILOVER_FREEZE, default 10)
  --spread <ms>             spread the signals evenly over this long; 0 sends all at once
                            (BENCH_FAILOVER_SPREAD_MS, default the control plane's SWEEP_INTERVAL_MS)
  --cap <s>                 how long after its signal a detection counts (BENCH_FAILOVER_CAP_S, default 30)
  --settle <s>              wait between "all ONLINE" and the signals (BENCH_FAILOVER_SETTLE_S, default 5)
  --start-concurrency <n>   agents starting at once (BENCH_FAILOVER_START_CONCURRENCY, default 8)
  --strict                  also exit 1 when a p99 misses its target (BENCH_FAILOVER_STRICT=1)
  --postgres-url <url>      where to create the throwaway database (BENCH_POSTGRES_URL,
                            default postgres://postgres@127.0.0.1:5432/test)
  --redis-url <url>         Redis to use with a unique key prefix (BENCH_REDIS_URL, default redis://127.0.0.1:6379)
  --help                    show this text

The control plane runs with its default timing unless LEASE_TTL_MS, HEARTBEAT_INTERVAL_MS,
FAILURE_GRACE_MS or SWEEP_INTERVAL_MS are set in the environment.
`;

/** Thrown for flags or variables a person must fix; the message names them. */
export class FailoverOptionsError extends Error {}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

const count = (fallback: number, min: number, max: number) =>
  z.coerce.number().int().min(min).max(max).default(fallback);
// The bench creates and drops a database and writes Redis keys: it refuses
// anything but this machine's own servers.
const loopbackUrl = (protocols: readonly string[], fallback: string) =>
  z
    .string()
    .default(fallback)
    .refine(
      (value) => {
        try {
          const url = new URL(value);
          return protocols.includes(url.protocol) && (LOOPBACK.has(url.hostname) || url.hostname.startsWith('127.'));
        } catch {
          return false;
        }
      },
      { message: `expected a ${protocols.join(' or ')} URL on this machine (127.0.0.1, localhost or [::1])` },
    );

const schema = z
  .object({
    // Each agent is a Node process of about 70 MiB; the bootstrap join token allows 10,000 enrolments.
    BENCH_FAILOVER_AGENTS: count(100, 1, 1000),
    BENCH_FAILOVER_KILL: count(10, 0, 1000),
    BENCH_FAILOVER_FREEZE: count(10, 0, 1000),
    BENCH_FAILOVER_SPREAD_MS: z.coerce.number().int().min(0).max(60_000).optional(),
    BENCH_FAILOVER_CAP_S: count(30, 1, 600),
    BENCH_FAILOVER_SETTLE_S: count(5, 0, 600),
    BENCH_FAILOVER_START_CONCURRENCY: count(8, 1, 1000),
    BENCH_FAILOVER_STRICT: z.enum(['', '0', '1', 'true', 'false']).default(''),
    BENCH_POSTGRES_URL: loopbackUrl(['postgres:', 'postgresql:'], 'postgres://postgres@127.0.0.1:5432/test'),
    BENCH_REDIS_URL: loopbackUrl(['redis:'], 'redis://127.0.0.1:6379'),
  })
  .superRefine((e, ctx) => {
    if (e.BENCH_FAILOVER_KILL + e.BENCH_FAILOVER_FREEZE === 0) {
      ctx.addIssue({ code: 'custom', path: ['BENCH_FAILOVER_KILL'], message: 'kill or freeze at least one agent' });
    }
    if (e.BENCH_FAILOVER_KILL + e.BENCH_FAILOVER_FREEZE > e.BENCH_FAILOVER_AGENTS) {
      ctx.addIssue({
        code: 'custom',
        path: ['BENCH_FAILOVER_KILL'],
        message: `kill + freeze must not exceed the ${e.BENCH_FAILOVER_AGENTS} agents`,
      });
    }
  });

const flags = {
  agents: { type: 'string' },
  kill: { type: 'string' },
  freeze: { type: 'string' },
  spread: { type: 'string' },
  cap: { type: 'string' },
  settle: { type: 'string' },
  'start-concurrency': { type: 'string' },
  strict: { type: 'boolean' },
  'postgres-url': { type: 'string' },
  'redis-url': { type: 'string' },
  help: { type: 'boolean' },
} as const;

function parseFlags(argv: string[]) {
  try {
    return parseArgs({ args: argv, options: flags, strict: true }).values;
  } catch (error) {
    throw new FailoverOptionsError(error instanceof Error ? error.message : String(error));
  }
}

/** Returns undefined when --help was asked for. */
export function loadFailoverOptions(argv: string[], env: NodeJS.ProcessEnv): FailoverOptions | undefined {
  const values = parseFlags(argv);
  if (values.help) return undefined;
  const merged = {
    BENCH_FAILOVER_AGENTS: values.agents ?? env.BENCH_FAILOVER_AGENTS,
    BENCH_FAILOVER_KILL: values.kill ?? env.BENCH_FAILOVER_KILL,
    BENCH_FAILOVER_FREEZE: values.freeze ?? env.BENCH_FAILOVER_FREEZE,
    BENCH_FAILOVER_SPREAD_MS: values.spread ?? (env.BENCH_FAILOVER_SPREAD_MS || undefined),
    BENCH_FAILOVER_CAP_S: values.cap ?? env.BENCH_FAILOVER_CAP_S,
    BENCH_FAILOVER_SETTLE_S: values.settle ?? env.BENCH_FAILOVER_SETTLE_S,
    BENCH_FAILOVER_START_CONCURRENCY: values['start-concurrency'] ?? env.BENCH_FAILOVER_START_CONCURRENCY,
    BENCH_FAILOVER_STRICT: values.strict ? '1' : env.BENCH_FAILOVER_STRICT,
    BENCH_POSTGRES_URL: values['postgres-url'] ?? env.BENCH_POSTGRES_URL,
    BENCH_REDIS_URL: values['redis-url'] ?? env.BENCH_REDIS_URL,
  };
  const parsed = schema.safeParse(merged);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${String(issue.path[0])}: ${issue.message}`);
    throw new FailoverOptionsError(`Invalid options: ${problems.join('; ')}`);
  }
  const e = parsed.data;
  return {
    agents: e.BENCH_FAILOVER_AGENTS,
    kill: e.BENCH_FAILOVER_KILL,
    freeze: e.BENCH_FAILOVER_FREEZE,
    spreadMs: e.BENCH_FAILOVER_SPREAD_MS,
    capS: e.BENCH_FAILOVER_CAP_S,
    settleS: e.BENCH_FAILOVER_SETTLE_S,
    startConcurrency: e.BENCH_FAILOVER_START_CONCURRENCY,
    strict: e.BENCH_FAILOVER_STRICT === '1' || e.BENCH_FAILOVER_STRICT === 'true',
    postgresUrl: e.BENCH_POSTGRES_URL,
    redisUrl: e.BENCH_REDIS_URL,
  };
}
