import { hostname } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { defaultBackoff } from '../lib/backoff.js';
import type { AgentOptions } from './agent.js';

/** Agent settings plus how it logs; flags win over environment variables. */
export interface AgentConfig extends AgentOptions {
  logLevel: string;
  logFormat: 'json' | 'pretty';
}

export const AGENT_VERSION = '0.1.0';

const USAGE = `Usage: npm run agent -- [options]

  --control-plane <host:port>  gRPC address of the control plane (CONTROL_PLANE_ADDRESS, default localhost:50051);
                               several, comma-separated, are tried in turn when a stream ends
  --name <name>                unique worker name (WORKER_NAME, default the host name)
  --capacity <n>               sessions this worker accepts (WORKER_CAPACITY, default 100)
  --labels <k=v,...>           placement labels, e.g. region=eu,zone=a (WORKER_LABELS)
  --engines <list>             engines to offer: sandbox, baileys (WORKER_ENGINES, default sandbox)
  --join-token <token>         enrols the worker the first time (JOIN_TOKEN; create one with AdminService/CreateJoinToken)
  --state-dir <dir>            where the worker credential is kept (AGENT_STATE_DIR, default ./data/agent)
  --drain-timeout <ms>         on SIGTERM, how long to wait for work to move before exiting (AGENT_DRAIN_TIMEOUT_MS, default 30000)
  --log-level <level>          AGENT_LOG_LEVEL, default info
  SANDBOX_SEND_LOG=<file>      sandbox engine: log sends by message id to this file (shared by agents on the
                               machine) and never send an id found there again; default unset (per process)
  --log-format <json|pretty>   AGENT_LOG_FORMAT, default json
`;

/** Thrown for bad flags or variables; main() prints it with the usage. */
export class AgentConfigError extends Error {
  readonly usage = USAGE;
}

const schema = z.object({
  CONTROL_PLANE_ADDRESS: z
    .string()
    .regex(
      /^[^\s/,]+:\d{1,5}(,[^\s/,]+:\d{1,5})*$/,
      'expected host:port (or several, comma-separated), e.g. localhost:50051',
    )
    .default('localhost:50051'),
  WORKER_NAME: z.string().min(1).default(hostname().toLowerCase()),
  WORKER_CAPACITY: z.coerce.number({ error: 'expected a number' }).int().min(1).max(100_000).default(100),
  WORKER_LABELS: z.string().default(''),
  WORKER_ENGINES: z.string().default('sandbox'),
  AGENT_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  AGENT_LOG_FORMAT: z.enum(['json', 'pretty']).default('json'),
  AGENT_KEEPALIVE_TIME_MS: z.coerce.number().int().min(1000).default(20_000),
  AGENT_KEEPALIVE_TIMEOUT_MS: z.coerce.number().int().min(1000).default(10_000),
  JOIN_TOKEN: z.string().min(1).optional(),
  AGENT_STATE_DIR: z.string().min(1).default('./data/agent'),
  AGENT_DRAIN_TIMEOUT_MS: z.coerce.number({ error: 'expected a number' }).int().min(0).default(30_000),
  SANDBOX_SEND_LOG: z.string().min(1).optional(),
});

export function loadAgentConfig(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): AgentConfig {
  let flags: Record<string, string | undefined>;
  try {
    flags = parseArgs({
      args: [...argv],
      options: {
        'control-plane': { type: 'string' },
        name: { type: 'string' },
        capacity: { type: 'string' },
        labels: { type: 'string' },
        engines: { type: 'string' },
        'log-level': { type: 'string' },
        'log-format': { type: 'string' },
        'join-token': { type: 'string' },
        'state-dir': { type: 'string' },
        'drain-timeout': { type: 'string' },
      },
      strict: true,
    }).values;
  } catch (error) {
    throw new AgentConfigError(error instanceof Error ? error.message : String(error));
  }
  // An empty variable means "use the default", as for the control plane.
  const merged = {
    ...Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value.trim() !== '')),
    ...definedOnly({
      CONTROL_PLANE_ADDRESS: flags['control-plane'],
      WORKER_NAME: flags.name,
      WORKER_CAPACITY: flags.capacity,
      WORKER_LABELS: flags.labels,
      WORKER_ENGINES: flags.engines,
      AGENT_LOG_LEVEL: flags['log-level'],
      AGENT_LOG_FORMAT: flags['log-format'],
      JOIN_TOKEN: flags['join-token'],
      AGENT_STATE_DIR: flags['state-dir'],
      AGENT_DRAIN_TIMEOUT_MS: flags['drain-timeout'],
    }),
  };
  const parsed = schema.safeParse(merged);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${String(issue.path[0])}: ${issue.message}`);
    throw new AgentConfigError(`Invalid agent configuration: ${problems.join('; ')}`);
  }
  const e = parsed.data;
  return {
    controlPlaneAddress: e.CONTROL_PLANE_ADDRESS,
    workerName: e.WORKER_NAME,
    capacity: e.WORKER_CAPACITY,
    labels: parseLabels(e.WORKER_LABELS),
    engines: parseEngines(e.WORKER_ENGINES),
    version: AGENT_VERSION,
    backoff: defaultBackoff,
    keepaliveTimeMs: e.AGENT_KEEPALIVE_TIME_MS,
    keepaliveTimeoutMs: e.AGENT_KEEPALIVE_TIMEOUT_MS,
    welcomeTimeoutMs: 10_000,
    joinToken: e.JOIN_TOKEN,
    credentialFile: join(e.AGENT_STATE_DIR, `${e.WORKER_NAME}.credential`),
    drainTimeoutMs: e.AGENT_DRAIN_TIMEOUT_MS,
    sandboxSendLog: e.SANDBOX_SEND_LOG,
    logLevel: e.AGENT_LOG_LEVEL,
    logFormat: e.AGENT_LOG_FORMAT,
  };
}

/** "region=eu, zone=a" -> { region: "eu", zone: "a" } */
export function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const part of text
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new AgentConfigError(`WORKER_LABELS: expected key=value, got ${JSON.stringify(part)}`);
    labels[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
  }
  return labels;
}

function parseEngines(text: string): ('SANDBOX' | 'BAILEYS')[] {
  const engines = text
    .split(',')
    .map((p) => p.trim().toUpperCase())
    .filter(Boolean);
  for (const engine of engines) {
    if (engine !== 'SANDBOX' && engine !== 'BAILEYS') {
      throw new AgentConfigError(
        `WORKER_ENGINES: unknown engine ${JSON.stringify(engine.toLowerCase())} (use sandbox, baileys)`,
      );
    }
  }
  if (engines.length === 0) throw new AgentConfigError('WORKER_ENGINES: name at least one engine');
  return [...new Set(engines)] as ('SANDBOX' | 'BAILEYS')[];
}

function definedOnly(values: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(values).filter((entry): entry is [string, string] => entry[1] !== undefined),
  );
}
