import { z } from 'zod';
import { backingServices, count, parseFlags, validate } from '../harness/options.js';

/** The run's settings, compiled once from flags and environment (flags win), defaults applied. */
export interface SendOptions {
  /** WORKING sessions the messages go through. */
  sessions: number;
  /** Real agent processes (and as many floor agents). */
  agents: number;
  /** SendText calls in flight at all times. */
  concurrency: number;
  warmupS: number;
  durationS: number;
  /** CreateSession and ScanQr calls in flight while the sessions are set up. */
  setupConcurrency: number;
  /** Write V8 CPU profiles of the control plane and the floor server into the run's folder, which is kept. */
  profile: boolean;
  postgresUrl: string;
  redisUrl: string;
}

export const USAGE = `Usage: npm run bench:send -- [options]

  --sessions <n>           WORKING sessions sent through (BENCH_SEND_SESSIONS, default 1000)
  --agents <n>             agent processes, capacity sessions/agents each (BENCH_SEND_AGENTS, default 10)
  --concurrency <n>        SendText calls in flight (BENCH_SEND_CONCURRENCY, default 64)
  --warmup <s>             sending before the window opens (BENCH_SEND_WARMUP_S, default 5)
  --duration <s>           the measured window (BENCH_SEND_DURATION_S, default 20)
  --setup-concurrency <n>  CreateSession / ScanQr calls in flight during set-up (BENCH_SEND_SETUP_CONCURRENCY, default 32)
  --profile                write CPU profiles (.cpuprofile) of both servers and keep the run folder
  --postgres-url <url>     where to create the throwaway database (BENCH_POSTGRES_URL,
                           default postgres://postgres@127.0.0.1:5432/test)
  --redis-url <url>        Redis to use with a unique key prefix (BENCH_REDIS_URL, default redis://127.0.0.1:6379)
  --help                   show this text
`;

const schema = z.object({
  BENCH_SEND_SESSIONS: count(1000, 1, 100_000),
  BENCH_SEND_AGENTS: count(10, 1, 200),
  BENCH_SEND_CONCURRENCY: count(64, 1, 10_000),
  BENCH_SEND_WARMUP_S: count(5, 0, 600),
  BENCH_SEND_DURATION_S: count(20, 1, 3600),
  BENCH_SEND_SETUP_CONCURRENCY: count(32, 1, 1000),
  ...backingServices,
});

/** Returns undefined when --help was asked for. */
export function loadSendOptions(argv: string[], env: NodeJS.ProcessEnv): SendOptions | undefined {
  const values = parseFlags(argv, {
    sessions: { type: 'string' },
    agents: { type: 'string' },
    concurrency: { type: 'string' },
    warmup: { type: 'string' },
    duration: { type: 'string' },
    'setup-concurrency': { type: 'string' },
    profile: { type: 'boolean' },
    'postgres-url': { type: 'string' },
    'redis-url': { type: 'string' },
    help: { type: 'boolean' },
  });
  if (values.help) return undefined;
  const e = validate(schema, {
    BENCH_SEND_SESSIONS: values.sessions ?? env.BENCH_SEND_SESSIONS,
    BENCH_SEND_AGENTS: values.agents ?? env.BENCH_SEND_AGENTS,
    BENCH_SEND_CONCURRENCY: values.concurrency ?? env.BENCH_SEND_CONCURRENCY,
    BENCH_SEND_WARMUP_S: values.warmup ?? env.BENCH_SEND_WARMUP_S,
    BENCH_SEND_DURATION_S: values.duration ?? env.BENCH_SEND_DURATION_S,
    BENCH_SEND_SETUP_CONCURRENCY: values['setup-concurrency'] ?? env.BENCH_SEND_SETUP_CONCURRENCY,
    BENCH_POSTGRES_URL: values['postgres-url'] ?? env.BENCH_POSTGRES_URL,
    BENCH_REDIS_URL: values['redis-url'] ?? env.BENCH_REDIS_URL,
  });
  return {
    sessions: e.BENCH_SEND_SESSIONS,
    agents: e.BENCH_SEND_AGENTS,
    concurrency: e.BENCH_SEND_CONCURRENCY,
    warmupS: e.BENCH_SEND_WARMUP_S,
    durationS: e.BENCH_SEND_DURATION_S,
    setupConcurrency: e.BENCH_SEND_SETUP_CONCURRENCY,
    profile: values.profile === true,
    postgresUrl: e.BENCH_POSTGRES_URL,
    redisUrl: e.BENCH_REDIS_URL,
  };
}
