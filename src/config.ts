import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { StartupError } from '../lib/errors.js';
import { HISTORY_ENV, historyConfig, type HistoryConfig } from './messaging/retention.config.js';
import { sendPolicyPlansVariable, type SendPolicyPlans } from './messaging/send-policy.js';
import { messagingConfig, messagingEnv, type MessagingConfig } from './messaging/messaging.config.js';

/**
 * Control-plane configuration, read once from environment variables at start.
 * Every variable is documented in .env.example and in the README table.
 */
export interface Config {
  /** Run as the all-in-one developer setup (`npm start`): embedded defaults and a local agent. */
  readonly dev: boolean;
  readonly host: string;
  readonly httpPort: number;
  readonly grpcPort: number;
  /** PostgreSQL connection string; undefined means embedded PGlite in `dataDir`. */
  readonly databaseUrl: string | undefined;
  readonly databasePoolMax: number;
  readonly dataDir: string;
  /** Redis connection string; undefined means the in-process coordination store. */
  readonly redisUrl: string | undefined;
  /** Prefix for every Redis key and channel, so deployments and test runs can share one Redis. */
  readonly redisKeyPrefix: string;
  readonly logLevel: string;
  readonly logFormat: 'json' | 'pretty';
  readonly heartbeatIntervalMs: number;
  readonly leaseTtlMs: number;
  readonly sweepIntervalMs: number;
  /** How long a worker whose connection was lost may take to reconnect before it is FAILED. */
  readonly failureGraceMs: number;
  /** Agent streams are ended (±10% jitter) after this long so they spread over replicas again. */
  readonly maxConnectionAgeMs: number;
  /** How long the fleet-wide sweeper role lasts without renewal; a dead leader is replaced after this. */
  readonly sweeperLeadershipTtlMs: number;
  /** The mass-failure guard: more than this share (and at least this many) failing within a lease holds reassignment. */
  readonly massFailure: { maxFailedShare: number; minFailures: number };
  /** How often buffered heartbeat metrics are written to PostgreSQL. */
  readonly metricsFlushIntervalMs: number;
  /**
   * At most one log line per worker (or, for requests that cannot be decoded,
   * per address) and cause of refusal within this long; the rest are only counted.
   */
  readonly workerWarningIntervalMs: number;
  readonly shutdownTimeoutMs: number;
  /** Largest request message accepted; bigger ones are refused before they are read whole. */
  readonly maxRequestBytes: number;
  /** Identifies this control-plane process among replicas sharing one Redis. */
  readonly replicaId: string;
  /**
   * Keys that encrypt session auth states at rest, newest (used to encrypt)
   * first; undefined outside production means a key kept in `dataDir`.
   */
  readonly sessionStateKeys: EncryptionKeyList | undefined;
  /** The engine of a session created without one: the sandbox in the developer setup, Baileys otherwise. */
  readonly defaultEngine: 'SANDBOX' | 'BAILEYS';
  /** Sessions a tenant may have, by plan. */
  readonly sessionQuota: { free: number; pro: number; enterprise: number };
  /** How long a tenant request (send a message) waits for the worker. */
  readonly requestTimeoutMs: number;
  /** The send governor (off only for benchmarks of the bare pipeline) and its plans' defaults and limits. */
  readonly sendGovernor: { enabled: boolean; plans: SendPolicyPlans };
  readonly auth: AuthConfig;
  readonly streams: StreamConfig;
  readonly history: HistoryConfig;
  readonly messaging: MessagingConfig;
}

/** Limits on server streams (WatchSession, WatchWorkers, health watch, reflection). */
export interface StreamConfig {
  /** Every stream ends after this long (UNAVAILABLE); clients reconnect with a fresh credential. */
  readonly maxLifetimeMs: number;
  /** A stream's caller is re-checked at least this often, besides on every invalidation. */
  readonly recheckIntervalMs: number;
  /** Concurrent streams per user or API key, by plan. */
  readonly perCaller: { free: number; pro: number; enterprise: number };
  /** Concurrent streams per tenant, by plan. */
  readonly perTenant: { free: number; pro: number; enterprise: number };
  /** Concurrent streams per client address without credentials (health watch), reflection aside. */
  readonly anonymousPerIp: number;
  /** Concurrent server reflection streams per client address (one per running grpcurl / buf curl call). */
  readonly reflectionPerIp: number;
  /** A replica's stream slots expire this long after it stops renewing them (it died). */
  readonly slotTtlMs: number;
}

/** Identity and access settings. */
export interface AuthConfig {
  readonly accessTokenTtlMs: number;
  readonly refreshTokenTtlMs: number;
  readonly workerCredentialTtlMs: number;
  readonly signingKeyRotationMs: number;
  /**
   * Keys that encrypt the signing keys' private halves at rest, newest (used
   * to encrypt) first; undefined outside production means a key kept in `dataDir`.
   */
  readonly signingKeyEncryptionKeys: EncryptionKeyList | undefined;
  /** How long a replica trusts a cached user standing or API key before re-reading it. */
  readonly cacheTtlMs: number;
  /** How long an invitation to join a tenant can be accepted. */
  readonly invitationTtlMs: number;
  readonly argon2: { memoryCostKiB: number; timeCost: number; parallelism: number };
  /** Failed-password throttling; the policy is described in identity/login-throttle.ts. */
  readonly login: {
    /** Per account and IP for Login, per user for ChangePassword. */
    maxFailures: number;
    maxFailuresPerIp: number;
    windowMs: number;
    lockoutMs: number;
    /** Failures on one account, from any IP, after which IPs that failed on it wait between attempts. */
    delayAfterFailures: number;
    /** The first such wait; each further failure doubles it, up to delayMaxMs. */
    delayBaseMs: number;
    delayMaxMs: number;
  };
  /** Calls per window (a minute unless RATE_LIMIT_WINDOW_MS says otherwise) by tier. */
  readonly rateLimits: { windowMs: number; anonymous: number; free: number; pro: number; enterprise: number };
  /** Creates this platform admin at start when set (and none with that email exists). */
  readonly bootstrapAdmin: { email: string; password: string } | undefined;
  /** A pre-shared multi-use join token registered at start (compose, automated installs). */
  readonly bootstrapJoinToken: string | undefined;
}

type Env = Readonly<Record<string, string | undefined>>;

/** Encryption keys as configured: `<id>:<32 bytes in base64>`, comma-separated, newest first. */
export type EncryptionKeyList = { id: string; key: Buffer }[];

// Never echoed back in a configuration error: the message may end up in a log.
const SECRET_VARIABLES = new Set([
  'SESSION_STATE_KEYS',
  'SIGNING_KEY_ENCRYPTION_KEYS',
  'BOOTSTRAP_ADMIN_PASSWORD',
  'BOOTSTRAP_JOIN_TOKEN',
]);

const port = (fallback: number) =>
  z.coerce
    .number({ error: 'expected a port number' })
    .int('expected a whole number')
    .min(0, 'expected a port from 0 to 65535')
    .max(65535, 'expected a port from 0 to 65535')
    .default(fallback);

const milliseconds = (fallback: number, min = 1) =>
  z.coerce
    .number({ error: 'expected a number of milliseconds' })
    .int('expected a whole number of milliseconds')
    .min(min, `expected at least ${min} ms`)
    .default(fallback);

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;

const count = (fallback: number, min: number, max: number) =>
  z.coerce
    .number({ error: 'expected a number' })
    .int('expected a whole number')
    .min(min, `expected at least ${min}`)
    .max(max, `expected at most ${max}`)
    .default(fallback);

const url = (protocols: readonly string[]) =>
  z
    .string()
    .trim()
    .transform((value) => (value === '' ? undefined : value))
    .refine(
      (value) => {
        if (value === undefined) return true;
        try {
          return protocols.includes(new URL(value).protocol);
        } catch {
          return false;
        }
      },
      { message: `expected a URL starting with ${protocols.map((p) => `${p}//`).join(' or ')}` },
    )
    .optional();

const encryptionKeys = z
  .string()
  .regex(
    /^[A-Za-z0-9_-]{1,32}:[A-Za-z0-9+/]{43}=(,[A-Za-z0-9_-]{1,32}:[A-Za-z0-9+/]{43}=)*$/,
    'expected <key id>:<32 bytes in base64>, comma-separated, newest first (openssl rand -base64 32)',
  )
  .transform((value, ctx): EncryptionKeyList => {
    const keys = value.split(',').map((entry) => {
      const [id, key] = entry.split(':') as [string, string];
      return { id, key: Buffer.from(key, 'base64') };
    });
    // The id is stored with every blob; two keys under one id could not be told apart.
    const ids = keys.map((k) => k.id);
    const repeated = ids.find((id, i) => ids.indexOf(id) !== i);
    if (repeated !== undefined) ctx.addIssue({ code: 'custom', message: `key id ${repeated} appears twice` });
    return keys;
  })
  .optional();

const envSchema = z
  .object({
    HOST: z.string().min(1).optional(),
    HTTP_PORT: port(8080),
    GRPC_PORT: port(50051),
    DATABASE_URL: url(['postgres:', 'postgresql:']),
    DATABASE_POOL_MAX: z.coerce.number().int().min(1).max(1000).default(10),
    DATA_DIR: z.string().min(1).default('./data'),
    REDIS_URL: url(['redis:', 'rediss:']),
    REDIS_KEY_PREFIX: z.string().default('switchboard:'),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    LOG_FORMAT: z.enum(['json', 'pretty']).optional(),
    HEARTBEAT_INTERVAL_MS: milliseconds(2000, 100),
    LEASE_TTL_MS: milliseconds(10000, 300),
    SWEEP_INTERVAL_MS: milliseconds(1000, 50),
    FAILURE_GRACE_MS: milliseconds(3000, 0),
    MAX_CONNECTION_AGE_MS: milliseconds(30 * MINUTE, 1000),
    SWEEPER_LEADERSHIP_TTL_MS: milliseconds(5000, 100),
    MASS_FAILURE_SHARE: z.coerce.number().gt(0).lte(1).default(0.3),
    MASS_FAILURE_MIN_WORKERS: z.coerce.number().int().min(1).default(3),
    METRICS_FLUSH_INTERVAL_MS: milliseconds(1000, 50),
    WORKER_WARNING_INTERVAL_MS: milliseconds(MINUTE, 100),
    SHUTDOWN_TIMEOUT_MS: milliseconds(10000, 0),
    MAX_REQUEST_BYTES: count(1024 * 1024, 1024, 64 * 1024 * 1024),
    REPLICA_ID: z.string().min(1).optional(),
    ACCESS_TOKEN_TTL_MS: milliseconds(15 * MINUTE, 1000),
    REFRESH_TOKEN_TTL_MS: milliseconds(30 * DAY, 60_000),
    WORKER_CREDENTIAL_TTL_MS: milliseconds(30 * DAY, 60_000),
    SIGNING_KEY_ROTATION_MS: milliseconds(30 * DAY, 60_000),
    AUTH_CACHE_TTL_MS: milliseconds(5000, 0),
    INVITATION_TTL_MS: milliseconds(7 * DAY, MINUTE),
    ARGON2_MEMORY_KIB: count(19_456, 1024, 4 * 1024 * 1024),
    ARGON2_TIME_COST: count(2, 1, 100),
    ARGON2_PARALLELISM: count(1, 1, 64),
    LOGIN_MAX_FAILURES: count(5, 1, 1000),
    LOGIN_MAX_FAILURES_PER_IP: count(50, 1, 100_000),
    LOGIN_FAILURE_WINDOW_MS: milliseconds(15 * MINUTE, 1000),
    LOGIN_LOCKOUT_MS: milliseconds(15 * MINUTE, 1000),
    LOGIN_DELAY_AFTER_FAILURES: count(3, 1, 1000),
    LOGIN_DELAY_BASE_MS: milliseconds(1000, 1),
    LOGIN_DELAY_MAX_MS: milliseconds(MINUTE, 1),
    RATE_LIMIT_WINDOW_MS: milliseconds(MINUTE, 1000),
    RATE_LIMIT_ANONYMOUS_PER_MINUTE: count(60, 1, 10_000_000),
    RATE_LIMIT_FREE_PER_MINUTE: count(600, 1, 10_000_000),
    RATE_LIMIT_PRO_PER_MINUTE: count(6000, 1, 10_000_000),
    RATE_LIMIT_ENTERPRISE_PER_MINUTE: count(60_000, 1, 10_000_000),
    BOOTSTRAP_ADMIN_EMAIL: z.email('expected an email address').optional(),
    BOOTSTRAP_ADMIN_PASSWORD: z.string().min(12, 'expected at least 12 characters').optional(),
    NODE_ENV: z.string().optional(),
    SESSION_STATE_KEYS: encryptionKeys,
    SIGNING_KEY_ENCRYPTION_KEYS: encryptionKeys,
    DEFAULT_ENGINE: z.enum(['SANDBOX', 'BAILEYS']).optional(),
    SESSION_QUOTA_FREE: count(3, 0, 1_000_000),
    SESSION_QUOTA_PRO: count(50, 0, 1_000_000),
    SESSION_QUOTA_ENTERPRISE: count(1000, 0, 1_000_000),
    REQUEST_TIMEOUT_MS: milliseconds(15_000, 100),
    SEND_GOVERNOR: z.enum(['on', 'off']).default('on'),
    SEND_POLICY_PLANS: sendPolicyPlansVariable,
    ...messagingEnv,
    STREAM_MAX_LIFETIME_MS: milliseconds(60 * MINUTE, 1000),
    STREAM_RECHECK_INTERVAL_MS: milliseconds(MINUTE, 100),
    STREAMS_PER_CALLER_FREE: count(10, 1, 1_000_000),
    STREAMS_PER_CALLER_PRO: count(50, 1, 1_000_000),
    STREAMS_PER_CALLER_ENTERPRISE: count(500, 1, 1_000_000),
    STREAMS_PER_TENANT_FREE: count(25, 1, 1_000_000),
    STREAMS_PER_TENANT_PRO: count(250, 1, 1_000_000),
    STREAMS_PER_TENANT_ENTERPRISE: count(2500, 1, 1_000_000),
    STREAMS_PER_IP_ANONYMOUS: count(20, 1, 1_000_000),
    STREAMS_PER_IP_REFLECTION: count(200, 1, 1_000_000),
    BOOTSTRAP_JOIN_TOKEN: z
      .string()
      .regex(
        /^sbj_[a-z0-9]{16}_[A-Za-z0-9_-]{43}$/,
        'expected sbj_<16 lowercase letters or digits>_<43 base64url characters>',
      )
      .optional(),
    ...HISTORY_ENV,
  })
  .superRefine((env, ctx) => {
    if ((env.BOOTSTRAP_ADMIN_EMAIL === undefined) !== (env.BOOTSTRAP_ADMIN_PASSWORD === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: [env.BOOTSTRAP_ADMIN_EMAIL === undefined ? 'BOOTSTRAP_ADMIN_EMAIL' : 'BOOTSTRAP_ADMIN_PASSWORD'],
        message: 'set BOOTSTRAP_ADMIN_EMAIL and BOOTSTRAP_ADMIN_PASSWORD together',
      });
    }
    // A lease must survive at least two lost heartbeats, or one delayed
    // packet would take a healthy worker offline.
    if (env.LEASE_TTL_MS < 2 * env.HEARTBEAT_INTERVAL_MS) {
      ctx.addIssue({
        code: 'custom',
        path: ['LEASE_TTL_MS'],
        message: `must be at least twice HEARTBEAT_INTERVAL_MS (${env.HEARTBEAT_INTERVAL_MS} ms)`,
      });
    }
    // Auth states must stay readable by every replica and survive restarts:
    // production cannot fall back to a key generated on one machine.
    if (env.NODE_ENV === 'production' && env.SESSION_STATE_KEYS === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['SESSION_STATE_KEYS'],
        message: 'required when NODE_ENV=production (generate a key: echo "k1:$(openssl rand -base64 32)")',
      });
    }
    if (env.LOGIN_DELAY_MAX_MS < env.LOGIN_DELAY_BASE_MS) {
      ctx.addIssue({
        code: 'custom',
        path: ['LOGIN_DELAY_MAX_MS'],
        message: `must be at least LOGIN_DELAY_BASE_MS (${env.LOGIN_DELAY_BASE_MS} ms)`,
      });
    }
    // Anyone who reads the database must not be able to mint tokens, and
    // every replica must open the keys another one created.
    if (env.NODE_ENV === 'production' && env.SIGNING_KEY_ENCRYPTION_KEYS === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['SIGNING_KEY_ENCRYPTION_KEYS'],
        message:
          'required when NODE_ENV=production (generate a key: echo "s1:$(openssl rand -base64 32)"; see docs/keys.md)',
      });
    }
    // One key, one kind of data: a session-state key handed to whoever
    // handles session credentials must not also unlock token signing.
    // (Refinements also run when a field failed its own checks: then it is still a string.)
    const keysOf = (list: unknown) => (Array.isArray(list) ? (list as EncryptionKeyList) : []);
    const sessionKeys = new Set(keysOf(env.SESSION_STATE_KEYS).map((k) => k.key.toString('base64')));
    if (keysOf(env.SIGNING_KEY_ENCRYPTION_KEYS).some((k) => sessionKeys.has(k.key.toString('base64')))) {
      ctx.addIssue({
        code: 'custom',
        path: ['SIGNING_KEY_ENCRYPTION_KEYS'],
        message: 'must not reuse a key of SESSION_STATE_KEYS: generate a separate one (docs/keys.md)',
      });
    }
    // The sweeper renews its role every sweep; one slow sweep must not lose it.
    if (env.SWEEPER_LEADERSHIP_TTL_MS < 2 * env.SWEEP_INTERVAL_MS) {
      ctx.addIssue({
        code: 'custom',
        path: ['SWEEPER_LEADERSHIP_TTL_MS'],
        message: `must be at least twice SWEEP_INTERVAL_MS (${env.SWEEP_INTERVAL_MS} ms)`,
      });
    }
  });

/** Thrown for configuration a person must fix; names every bad variable. */
export class ConfigError extends StartupError {}

export function loadConfig(env: Env, options: { dev?: boolean } = {}): Config {
  // An empty variable (FOO= in a .env or compose file) means "use the default".
  const parsed = envSchema.safeParse(withoutEmpty(env));
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const variable = String(issue.path[0] ?? 'configuration');
      const given = env[variable];
      const echo = given !== undefined && !SECRET_VARIABLES.has(variable);
      return `${variable}: ${issue.message}${echo ? ` (got ${JSON.stringify(given)})` : ''}`;
    });
    throw new ConfigError(`Invalid configuration: ${problems.join('; ')}`);
  }
  const e = parsed.data;
  const dev = options.dev ?? false;
  return {
    dev,
    // The developer setup stays on loopback: it prints an admin credential.
    host: e.HOST ?? (dev ? '127.0.0.1' : '0.0.0.0'),
    httpPort: e.HTTP_PORT,
    grpcPort: e.GRPC_PORT,
    databaseUrl: e.DATABASE_URL,
    databasePoolMax: e.DATABASE_POOL_MAX,
    dataDir: e.DATA_DIR,
    redisUrl: e.REDIS_URL,
    redisKeyPrefix: e.REDIS_KEY_PREFIX,
    logLevel: e.LOG_LEVEL,
    logFormat: e.LOG_FORMAT ?? (dev ? 'pretty' : 'json'),
    heartbeatIntervalMs: e.HEARTBEAT_INTERVAL_MS,
    leaseTtlMs: e.LEASE_TTL_MS,
    sweepIntervalMs: e.SWEEP_INTERVAL_MS,
    failureGraceMs: e.FAILURE_GRACE_MS,
    maxConnectionAgeMs: e.MAX_CONNECTION_AGE_MS,
    sweeperLeadershipTtlMs: e.SWEEPER_LEADERSHIP_TTL_MS,
    massFailure: { maxFailedShare: e.MASS_FAILURE_SHARE, minFailures: e.MASS_FAILURE_MIN_WORKERS },
    metricsFlushIntervalMs: e.METRICS_FLUSH_INTERVAL_MS,
    workerWarningIntervalMs: e.WORKER_WARNING_INTERVAL_MS,
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    maxRequestBytes: e.MAX_REQUEST_BYTES,
    replicaId: e.REPLICA_ID ?? `${hostname()}-${randomBytes(3).toString('hex')}`,
    sessionStateKeys: e.SESSION_STATE_KEYS,
    defaultEngine: e.DEFAULT_ENGINE ?? (dev ? 'SANDBOX' : 'BAILEYS'),
    sessionQuota: { free: e.SESSION_QUOTA_FREE, pro: e.SESSION_QUOTA_PRO, enterprise: e.SESSION_QUOTA_ENTERPRISE },
    requestTimeoutMs: e.REQUEST_TIMEOUT_MS,
    sendGovernor: { enabled: e.SEND_GOVERNOR === 'on', plans: e.SEND_POLICY_PLANS },
    auth: authConfig(e),
    streams: streamConfig(e),
    history: historyConfig(e),
    messaging: messagingConfig(e),
  };
}

type ParsedEnv = z.infer<typeof envSchema>;

function authConfig(e: ParsedEnv): AuthConfig {
  return {
    accessTokenTtlMs: e.ACCESS_TOKEN_TTL_MS,
    refreshTokenTtlMs: e.REFRESH_TOKEN_TTL_MS,
    workerCredentialTtlMs: e.WORKER_CREDENTIAL_TTL_MS,
    signingKeyRotationMs: e.SIGNING_KEY_ROTATION_MS,
    signingKeyEncryptionKeys: e.SIGNING_KEY_ENCRYPTION_KEYS,
    cacheTtlMs: e.AUTH_CACHE_TTL_MS,
    invitationTtlMs: e.INVITATION_TTL_MS,
    argon2: { memoryCostKiB: e.ARGON2_MEMORY_KIB, timeCost: e.ARGON2_TIME_COST, parallelism: e.ARGON2_PARALLELISM },
    login: {
      maxFailures: e.LOGIN_MAX_FAILURES,
      maxFailuresPerIp: e.LOGIN_MAX_FAILURES_PER_IP,
      windowMs: e.LOGIN_FAILURE_WINDOW_MS,
      lockoutMs: e.LOGIN_LOCKOUT_MS,
      delayAfterFailures: e.LOGIN_DELAY_AFTER_FAILURES,
      delayBaseMs: e.LOGIN_DELAY_BASE_MS,
      delayMaxMs: e.LOGIN_DELAY_MAX_MS,
    },
    rateLimits: {
      windowMs: e.RATE_LIMIT_WINDOW_MS,
      anonymous: e.RATE_LIMIT_ANONYMOUS_PER_MINUTE,
      free: e.RATE_LIMIT_FREE_PER_MINUTE,
      pro: e.RATE_LIMIT_PRO_PER_MINUTE,
      enterprise: e.RATE_LIMIT_ENTERPRISE_PER_MINUTE,
    },
    bootstrapAdmin:
      e.BOOTSTRAP_ADMIN_EMAIL && e.BOOTSTRAP_ADMIN_PASSWORD
        ? { email: e.BOOTSTRAP_ADMIN_EMAIL, password: e.BOOTSTRAP_ADMIN_PASSWORD }
        : undefined,
    bootstrapJoinToken: e.BOOTSTRAP_JOIN_TOKEN,
  };
}

function streamConfig(e: ParsedEnv): StreamConfig {
  return {
    maxLifetimeMs: e.STREAM_MAX_LIFETIME_MS,
    recheckIntervalMs: e.STREAM_RECHECK_INTERVAL_MS,
    perCaller: {
      free: e.STREAMS_PER_CALLER_FREE,
      pro: e.STREAMS_PER_CALLER_PRO,
      enterprise: e.STREAMS_PER_CALLER_ENTERPRISE,
    },
    perTenant: {
      free: e.STREAMS_PER_TENANT_FREE,
      pro: e.STREAMS_PER_TENANT_PRO,
      enterprise: e.STREAMS_PER_TENANT_ENTERPRISE,
    },
    anonymousPerIp: e.STREAMS_PER_IP_ANONYMOUS,
    reflectionPerIp: e.STREAMS_PER_IP_REFLECTION,
    slotTtlMs: 60_000,
  };
}

function withoutEmpty(env: Env): Env {
  return Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value.trim() !== ''));
}
