import { parseArgs } from 'node:util';
import { z } from 'zod';

/** The run's settings, compiled once from flags and environment (flags win), defaults applied. */
export interface BenchOptions {
  agents: number;
  /** Seconds of steady state measured, after every agent is connected and the warm-up is over. */
  durationS: number;
  /** Seconds between "all connected" and the window, so the ramp's garbage and JIT settle first. */
  warmupS: number;
  connectConcurrency: number;
  /** Embedded PGlite and the in-process store instead of the machine's PostgreSQL and Redis. */
  embedded: boolean;
  /** A database on the PostgreSQL server where the bench may CREATE and DROP its own database. */
  postgresUrl: string;
  redisUrl: string;
  /** Write a V8 CPU profile of each server into the run's folder, which is then kept. */
  profile: boolean;
}

export const USAGE = `Usage: npm run bench:streams -- [options]

  --agents <n>               simulated agents, one HTTP/2 connection and stream each (BENCH_AGENTS, default 1000)
  --duration <s>             steady-state window measured (BENCH_DURATION_S, default 60)
  --warmup <s>               wait between "all connected" and the window (BENCH_WARMUP_S, default 5)
  --connect-concurrency <n>  Hellos in flight while connecting (BENCH_CONNECT_CONCURRENCY, default 50)
  --embedded                 embedded PGlite and in-process store, no PostgreSQL or Redis (BENCH_EMBEDDED=1)
  --postgres-url <url>       where to create the throwaway database (BENCH_POSTGRES_URL,
                             default postgres://postgres@127.0.0.1:5432/postgres)
  --redis-url <url>          Redis to use with a unique key prefix (BENCH_REDIS_URL, default redis://127.0.0.1:6379)
  --profile                  write CPU profiles of both servers (.cpuprofile) and keep the run folder
  --help                     show this text
`;

/** Thrown for flags or variables a person must fix; the message names them. */
export class BenchOptionsError extends Error {}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

const count = (fallback: number, max: number) => z.coerce.number().int().min(1).max(max).default(fallback);
// The bench creates and drops databases and floods Redis with leases: it
// refuses anything but this machine's own servers.
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

const schema = z.object({
  // The control plane's BOOTSTRAP_JOIN_TOKEN, which the agents enrol with, allows 10,000 uses.
  BENCH_AGENTS: count(1000, 10_000),
  BENCH_DURATION_S: count(60, 3600),
  BENCH_WARMUP_S: z.coerce.number().int().min(0).max(600).default(5),
  BENCH_CONNECT_CONCURRENCY: count(50, 1000),
  BENCH_EMBEDDED: z.enum(['', '0', '1', 'true', 'false']).default(''),
  BENCH_POSTGRES_URL: loopbackUrl(['postgres:', 'postgresql:'], 'postgres://postgres@127.0.0.1:5432/postgres'),
  BENCH_REDIS_URL: loopbackUrl(['redis:'], 'redis://127.0.0.1:6379'),
});

const flags = {
  agents: { type: 'string' },
  duration: { type: 'string' },
  warmup: { type: 'string' },
  'connect-concurrency': { type: 'string' },
  embedded: { type: 'boolean' },
  'postgres-url': { type: 'string' },
  'redis-url': { type: 'string' },
  profile: { type: 'boolean' },
  help: { type: 'boolean' },
} as const;

function parseFlags(argv: string[]) {
  try {
    return parseArgs({ args: argv, options: flags, strict: true }).values;
  } catch (error) {
    throw new BenchOptionsError(error instanceof Error ? error.message : String(error));
  }
}

/** Returns undefined when --help was asked for. */
export function loadBenchOptions(argv: string[], env: NodeJS.ProcessEnv): BenchOptions | undefined {
  const values = parseFlags(argv);
  if (values.help) return undefined;
  const merged = {
    BENCH_AGENTS: values.agents ?? env.BENCH_AGENTS,
    BENCH_DURATION_S: values.duration ?? env.BENCH_DURATION_S,
    BENCH_WARMUP_S: values.warmup ?? env.BENCH_WARMUP_S,
    BENCH_CONNECT_CONCURRENCY: values['connect-concurrency'] ?? env.BENCH_CONNECT_CONCURRENCY,
    BENCH_EMBEDDED: values.embedded ? '1' : env.BENCH_EMBEDDED,
    BENCH_POSTGRES_URL: values['postgres-url'] ?? env.BENCH_POSTGRES_URL,
    BENCH_REDIS_URL: values['redis-url'] ?? env.BENCH_REDIS_URL,
  };
  const parsed = schema.safeParse(merged);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${String(issue.path[0])}: ${issue.message}`);
    throw new BenchOptionsError(`Invalid options: ${problems.join('; ')}`);
  }
  const e = parsed.data;
  return {
    agents: e.BENCH_AGENTS,
    durationS: e.BENCH_DURATION_S,
    warmupS: e.BENCH_WARMUP_S,
    connectConcurrency: e.BENCH_CONNECT_CONCURRENCY,
    embedded: e.BENCH_EMBEDDED === '1' || e.BENCH_EMBEDDED === 'true',
    postgresUrl: e.BENCH_POSTGRES_URL,
    redisUrl: e.BENCH_REDIS_URL,
    profile: values.profile ?? false,
  };
}
