import { z } from 'zod';
import { backingServices, count, parseFlags, validate } from '../harness/options.js';

/** The run's settings, compiled once from flags and environment (flags win), defaults applied. */
export interface E2eOptions {
  sessions: number;
  /** In-process agents, each one worker with its own stream. */
  agents: number;
  /** Sessions each agent accepts; default 1.25 x sessions / agents, so the fleet has a quarter spare. */
  capacity: number;
  /** Tenants the sessions are spread over, round-robin (each create locks its tenant's row). */
  tenants: number;
  /** CreateSession calls in flight at once. */
  concurrency: number;
  /** Fail when not every session reached its worker within this long after the first create. */
  timeoutS: number;
  /** Write a V8 CPU profile of the control plane into the run's folder, which is then kept. */
  profile: boolean;
  postgresUrl: string;
  redisUrl: string;
}

export const USAGE = `Usage: npm run bench:schedule:e2e -- [options]

  --sessions <n>        sessions created (BENCH_SCHEDULE_SESSIONS, default 2000)
  --agents <n>          in-process agents (BENCH_SCHEDULE_AGENTS, default 10)
  --capacity <n>        sessions per agent (BENCH_SCHEDULE_CAPACITY, default 1.25 x sessions / agents)
  --tenants <n>         tenants the sessions are spread over (BENCH_SCHEDULE_TENANTS, default 1)
  --concurrency <n>     CreateSession calls in flight (BENCH_SCHEDULE_CONCURRENCY, default 64)
  --timeout <s>         fail unless every session is placed within this long (BENCH_SCHEDULE_TIMEOUT_S, default 300)
  --profile             write a CPU profile (.cpuprofile) of the control plane and keep the run folder
  --postgres-url <url>  where to create the throwaway database (BENCH_POSTGRES_URL,
                        default postgres://postgres@127.0.0.1:5432/test)
  --redis-url <url>     Redis to use with a unique key prefix (BENCH_REDIS_URL, default redis://127.0.0.1:6379)
  --help                show this text
`;

const schema = z
  .object({
    BENCH_SCHEDULE_SESSIONS: count(2000, 1, 100_000),
    BENCH_SCHEDULE_AGENTS: count(10, 1, 200),
    BENCH_SCHEDULE_CAPACITY: z.coerce.number().int().min(1).max(100_000).optional(),
    BENCH_SCHEDULE_TENANTS: count(1, 1, 1000),
    BENCH_SCHEDULE_CONCURRENCY: count(64, 1, 10_000),
    BENCH_SCHEDULE_TIMEOUT_S: count(300, 1, 3600),
    ...backingServices,
  })
  .superRefine((e, ctx) => {
    const capacity = e.BENCH_SCHEDULE_CAPACITY;
    if (capacity !== undefined && capacity * e.BENCH_SCHEDULE_AGENTS < e.BENCH_SCHEDULE_SESSIONS) {
      ctx.addIssue({
        code: 'custom',
        path: ['BENCH_SCHEDULE_CAPACITY'],
        message: `${e.BENCH_SCHEDULE_AGENTS} agents x ${capacity} cannot hold ${e.BENCH_SCHEDULE_SESSIONS} sessions`,
      });
    }
  });

/** Returns undefined when --help was asked for. */
export function loadE2eOptions(argv: string[], env: NodeJS.ProcessEnv): E2eOptions | undefined {
  const values = parseFlags(argv, {
    sessions: { type: 'string' },
    agents: { type: 'string' },
    capacity: { type: 'string' },
    tenants: { type: 'string' },
    concurrency: { type: 'string' },
    timeout: { type: 'string' },
    profile: { type: 'boolean' },
    'postgres-url': { type: 'string' },
    'redis-url': { type: 'string' },
    help: { type: 'boolean' },
  });
  if (values.help) return undefined;
  const e = validate(schema, {
    BENCH_SCHEDULE_SESSIONS: values.sessions ?? env.BENCH_SCHEDULE_SESSIONS,
    BENCH_SCHEDULE_AGENTS: values.agents ?? env.BENCH_SCHEDULE_AGENTS,
    BENCH_SCHEDULE_CAPACITY: values.capacity ?? (env.BENCH_SCHEDULE_CAPACITY || undefined),
    BENCH_SCHEDULE_TENANTS: values.tenants ?? env.BENCH_SCHEDULE_TENANTS,
    BENCH_SCHEDULE_CONCURRENCY: values.concurrency ?? env.BENCH_SCHEDULE_CONCURRENCY,
    BENCH_SCHEDULE_TIMEOUT_S: values.timeout ?? env.BENCH_SCHEDULE_TIMEOUT_S,
    BENCH_POSTGRES_URL: values['postgres-url'] ?? env.BENCH_POSTGRES_URL,
    BENCH_REDIS_URL: values['redis-url'] ?? env.BENCH_REDIS_URL,
  });
  return {
    sessions: e.BENCH_SCHEDULE_SESSIONS,
    agents: e.BENCH_SCHEDULE_AGENTS,
    capacity: e.BENCH_SCHEDULE_CAPACITY ?? Math.ceil((1.25 * e.BENCH_SCHEDULE_SESSIONS) / e.BENCH_SCHEDULE_AGENTS),
    tenants: e.BENCH_SCHEDULE_TENANTS,
    concurrency: e.BENCH_SCHEDULE_CONCURRENCY,
    timeoutS: e.BENCH_SCHEDULE_TIMEOUT_S,
    profile: values.profile === true,
    postgresUrl: e.BENCH_POSTGRES_URL,
    redisUrl: e.BENCH_REDIS_URL,
  };
}
