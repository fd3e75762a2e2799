import { createInterface } from 'node:readline/promises';
import { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { loadConfig } from '../config.js';
import { entities } from '../entities.js';
import { systemClock } from '../../lib/clock.js';
import { systemScheduler } from '../../lib/timers.js';
import { MemoryCoordinationStore } from '../platform/coordination/memory-store.js';
import { databaseTarget, migrate, openDatabase } from '../platform/db/database.js';
import { localFilesDir } from '../platform/db/local-files.js';
import { StartupError } from '../../lib/errors.js';
import { createLogger } from '../../lib/logger.js';
import { describeError } from '../platform/loggable-error.js';
import { createIdentity } from './identity.module.js';

/**
 * `npm run admin:create -- --email E [--password P]`: creates the first
 * platform admin, or resets an existing user's password and makes them one.
 * The password comes from --password, the ADMIN_PASSWORD variable, or a prompt.
 */
async function main(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: { email: { type: 'string' }, password: { type: 'string' } },
    strict: true,
  });
  if (!values.email) throw new StartupError('usage: npm run admin:create -- --email you@example.com [--password ...]');
  // Login refuses anything but an email address: such an admin could never log in.
  if (!z.email().safeParse(values.email).success) throw new StartupError('--email: expected an email address');
  const password =
    values.password ?? process.env.ADMIN_PASSWORD ?? (await prompt('Password (at least 12 characters): '));
  if (password.length < 12) throw new StartupError('the password must have at least 12 characters');

  const config = loadConfig(process.env);
  const logger = createLogger({ level: 'warn', pretty: false, name: 'admin-create' });
  const database = await openDatabase(databaseTarget(config), entities, logger);
  try {
    await migrate(database, logger);
    const store = new MemoryCoordinationStore(systemClock);
    const identity = await createIdentity(config, {
      orm: database.orm,
      store,
      clock: systemClock,
      scheduler: systemScheduler,
      random: Math.random,
      logger,
      localDir: await localFilesDir(database, config.dataDir, logger),
    });
    const { user, created } = await identity.auth.ensurePlatformAdmin(database.orm.em.fork(), {
      email: values.email,
      password,
    });
    process.stdout.write(
      created
        ? `Created platform admin ${user.email} (${user.id}).\n`
        : `Reset the password of ${user.email} and made them a platform admin; their sessions were signed out.\n`,
    );
  } finally {
    await database.close();
  }
}

// Reads the password without echoing it to the terminal.
async function prompt(question: string): Promise<string> {
  process.stdout.write(question);
  const muted = new Writable({ write: (_chunk, _encoding, done) => done() });
  const rl = createInterface({ input: process.stdin, output: muted, terminal: true });
  try {
    return (await rl.question('')).trim();
  } finally {
    rl.close();
    process.stdout.write('\n');
  }
}

// One line whatever happens: a driver error's message quotes the statement (the password hash included).
try {
  await main();
} catch (error) {
  const expected = error instanceof StartupError || (error instanceof TypeError && 'code' in error);
  process.stderr.write(`switchboard admin:create: ${expected ? error.message : `failed: ${describeError(error)}`}\n`);
  process.exit(1);
}
