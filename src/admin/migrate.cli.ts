import { loadConfig } from '../config.js';
import { entities } from '../entities.js';
import { StartupError } from '../../lib/errors.js';
import { createLogger } from '../../lib/logger.js';
import { databaseTarget, migrate, openDatabase } from '../platform/db/database.js';
import { describeError } from '../platform/loggable-error.js';

/**
 * `npm run migrate`: applies pending migrations to DATABASE_URL (or the
 * embedded database) and exits. The control plane also does this at start;
 * this is for deploy pipelines that migrate before rolling out.
 */
try {
  const config = loadConfig(process.env);
  const logger = createLogger({ level: config.logLevel, pretty: false, name: 'migrate' });
  const database = await openDatabase(databaseTarget(config), entities, logger);
  try {
    const applied = await migrate(database, logger);
    process.stdout.write(
      applied.length > 0
        ? `Applied ${applied.length} migration(s): ${applied.join(', ')}\n`
        : 'Database is up to date.\n',
    );
  } finally {
    await database.close();
  }
} catch (error) {
  // One line whatever happens: a driver error's message quotes its statement.
  const line = error instanceof StartupError ? error.message : `failed: ${describeError(error)}`;
  process.stderr.write(`switchboard migrate: ${line}\n`);
  process.exit(1);
}
