import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { MikroORM, type Options } from '@mikro-orm/postgresql';
import { Migrator } from '@mikro-orm/migrations';
import { PGlite } from '@electric-sql/pglite';
import { PGliteDriver, type PGliteConnectionConfig } from 'mikro-orm-pglite';
import { StartupError } from '../../../lib/errors.js';
import type { Logger } from '../../../lib/logger.js';
import { redactUrl } from '../coordination/redis-store.js';
import { migrationsList } from './migrations/index.js';
import { lockDataDir } from './data-dir-lock.js';

/** Where the data lives: a PostgreSQL server, or embedded PGlite files for the developer setup. */
export type DatabaseTarget = { kind: 'postgresql'; url: string; poolMax: number } | { kind: 'pglite'; dataDir: string };

/**
 * The entities the ORM maps, handed in by the caller (src/entities.ts
 * assembles them): the database layer knows no capability.
 */
export type EntityList = NonNullable<Options['entities']>;

/** The open database: the ORM plus what the process needs to report and close it. */
export interface Database {
  readonly orm: MikroORM;
  readonly kind: DatabaseTarget['kind'];
  /** Human-readable location, password removed. */
  readonly location: string;
  /** Throws when the database does not answer. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export function databaseTarget(config: {
  databaseUrl: string | undefined;
  databasePoolMax: number;
  dataDir: string;
}): DatabaseTarget {
  return config.databaseUrl
    ? { kind: 'postgresql', url: config.databaseUrl, poolMax: config.databasePoolMax }
    : { kind: 'pglite', dataDir: resolve(config.dataDir, 'pglite') };
}

const shared = {
  extensions: [Migrator],
  migrations: {
    migrationsList,
    tableName: 'mikro_orm_migrations',
    transactional: true,
    allOrNothing: true,
  },
  // Entities are EntitySchema definitions; no reflection or discovery needed.
  discovery: { warnWhenNoEntities: true },
  allowGlobalContext: false,
} satisfies Partial<Options>;

/** How long start-up waits for PostgreSQL to answer. */
const CONNECT_TIMEOUT_MS = 3000;

/** Opens the database (failing with one clear line when it cannot be reached). */
export async function openDatabase(target: DatabaseTarget, entities: EntityList, logger: Logger): Promise<Database> {
  const log = logger.child({ component: 'db' });
  const loggerFactory = () => ({
    log: (_namespace: string, message: string) => log.debug(message),
    error: (_namespace: string, message: string) => log.error(message),
    warn: (_namespace: string, message: string) => log.warn(message),
    logQuery: () => {},
    setDebugMode: () => {},
    isEnabled: () => false,
  });

  if (target.kind === 'postgresql') {
    const location = redactUrl(target.url);
    let orm: MikroORM;
    try {
      orm = await MikroORM.init({
        ...shared,
        entities,
        clientUrl: target.url,
        // Connect once, below: MikroORM's own connect check would try again
        // (doubling the wait) and log a second line about the same failure.
        connect: false,
        // A mistyped database name must fail, not silently create a new database.
        ensureDatabase: false,
        pool: { min: 0, max: target.poolMax },
        // A server that accepts the connection but never answers (a wrong
        // port, a stalled proxy) fails within this instead of hanging.
        driverOptions: { connection: { connectionTimeoutMillis: CONNECT_TIMEOUT_MS } },
        loggerFactory,
      });
      await orm.em.getConnection().execute('select 1');
    } catch (cause) {
      throw new StartupError(postgresUnavailable(target.url, cause));
    }
    return wrap(orm, 'postgresql', location, async () => {});
  }

  mkdirSync(target.dataDir, { recursive: true });
  // The lock sits beside the database folder: PGlite wants that folder to itself.
  const unlock = lockDataDir(dirname(target.dataDir));
  let pglite: PGlite;
  try {
    pglite = await PGlite.create(target.dataDir);
  } catch (cause) {
    unlock();
    throw new StartupError(
      `Cannot open the embedded database in ${target.dataDir} (${describe(cause)}). ` +
        'Another Switchboard may be using it: stop it, or set DATA_DIR to another folder.',
    );
  }
  const orm = await MikroORM.init({
    ...shared,
    entities,
    driver: PGliteDriver,
    dbName: 'postgres',
    ensureDatabase: false,
    driverOptions: { connection: { pglite: () => pglite } satisfies PGliteConnectionConfig },
    loggerFactory,
  } as unknown as Options);
  return wrap(orm, 'pglite', target.dataDir, async () => {
    await pglite.close();
    unlock();
  });
}

function wrap(
  orm: MikroORM,
  kind: DatabaseTarget['kind'],
  location: string,
  closeExtra: () => Promise<void>,
): Database {
  return {
    orm,
    kind,
    location,
    ping: async () => {
      await orm.em.getConnection().execute('select 1');
    },
    close: async () => {
      await orm.close(true);
      await closeExtra();
    },
  };
}

/** Applies pending migrations; safe to run on every start and concurrently from several replicas. */
export async function migrate(database: Database, logger: Logger): Promise<string[]> {
  const connection = database.orm.em.getConnection();
  // Replicas starting together serialise on an advisory lock instead of
  // racing to create the same tables.
  const lockKey = 0x5b_0a_2d; // arbitrary, constant for Switchboard migrations
  if (database.kind === 'postgresql') await connection.execute(`select pg_advisory_lock(${lockKey})`);
  try {
    const applied = await database.orm.getMigrator().up();
    const names = applied.map((migration) => migration.name);
    if (names.length > 0) logger.info({ migrations: names }, 'applied database migrations');
    return names;
  } finally {
    if (database.kind === 'postgresql') await connection.execute(`select pg_advisory_unlock(${lockKey})`);
  }
}

/** PostgreSQL's code for "database … does not exist". */
const INVALID_CATALOG_NAME = '3D000';

/** The one line start-up prints when PostgreSQL cannot be used, saying what to do. */
export function postgresUnavailable(url: string, cause: unknown): string {
  const location = redactUrl(url);
  const code = (cause as { code?: unknown } | null)?.code;
  if (code === INVALID_CATALOG_NAME) {
    const { hostname, port, username, pathname } = new URL(url);
    const name = decodeURIComponent(pathname.slice(1));
    const user = username ? ` -U ${decodeURIComponent(username)}` : '';
    return (
      `PostgreSQL at ${location} answers, but has no database "${name}". ` +
      `Create it (createdb -h ${hostname} -p ${port || '5432'}${user} ${name}, ` +
      `or in psql: CREATE DATABASE "${name}";) or fix DATABASE_URL.`
    );
  }
  return (
    `Cannot reach PostgreSQL at ${location} (${describe(cause)}). ` +
    'Start PostgreSQL there, fix DATABASE_URL, or unset DATABASE_URL to use the embedded database.'
  );
}

function describe(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) return error.errors.map(describe).join(', ');
  if (error instanceof Error) return error.message || error.name;
  if (typeof error === 'object' && error !== null) return JSON.stringify(error);
  return String(error);
}
