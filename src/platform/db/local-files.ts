import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Logger } from '../../../lib/logger.js';
import type { Database } from './database.js';

/** Files that used to sit in DATA_DIR whatever the database. */
const SHARED_BEFORE = ['session-state.key', 'signing-key-encryption.key', 'agent'];

/**
 * The folder for files that belong with this database and live on this
 * machine: generated development keys and the local agent's state. The
 * embedded database keeps them beside itself in DATA_DIR; a PostgreSQL
 * database gets DATA_DIR/databases/<its installation id>, so pointing the
 * same checkout at another database never reuses one database's keys or
 * worker credential with another (which, at best, logs refusals before
 * recovering, and at worst seals a second database's secrets with keys
 * filed as the first's).
 */
export async function localFilesDir(database: Database, dataDir: string, logger: Logger): Promise<string> {
  const root = resolve(dataDir);
  if (database.kind === 'pglite') return root;
  const rows = await database.orm.em
    .getConnection()
    .execute<{ id: string }[]>('select "id" from "installation" order by "created_at" limit 1');
  const id = rows[0]?.id;
  if (!id) throw new Error('the database has no installation row: run the migrations (npm run migrate)');
  const dir = join(root, 'databases', id);
  warnAboutEarlierLayout(root, dir, logger);
  return dir;
}

/**
 * Before files were kept per database, a PostgreSQL setup kept them in
 * DATA_DIR itself. Which database they belonged to is not known, so they
 * are not moved: the developer is told once, when this database's folder
 * does not exist yet.
 */
function warnAboutEarlierLayout(root: string, dir: string, logger: Logger): void {
  if (existsSync(dir) || existsSync(join(root, 'pglite'))) return;
  const earlier = SHARED_BEFORE.filter((name) => existsSync(join(root, name)));
  if (earlier.length === 0) return;
  logger.warn(
    { found: earlier.map((name) => join(root, name)), folder: dir },
    'files kept for a PostgreSQL database before they were kept per database: if they belong to this database, move them into its folder before it makes new ones',
  );
}
