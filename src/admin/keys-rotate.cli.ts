import { parseArgs } from 'node:util';
import { loadConfig } from '../config.js';
import { entities } from '../entities.js';
import { loadSigningKeyEncryptionKeys, SigningKeyVault } from '../identity/signing-key-vault.js';
import { KeyUnavailableError } from '../platform/crypto/envelope-cipher.js';
import { databaseTarget, migrate, openDatabase } from '../platform/db/database.js';
import { localFilesDir } from '../platform/db/local-files.js';
import { describeError } from '../platform/loggable-error.js';
import { StartupError } from '../../lib/errors.js';
import { createLogger } from '../../lib/logger.js';
import { createAuthStateCipher, loadStateKeys } from '../sessions/auth-state-cipher.js';
import { describeRotation, rotateKeys } from './key-rotation.js';

/**
 * `npm run keys:rotate [-- --check]`: re-encrypts every signing key and
 * session auth state not sealed with the newest key of
 * SIGNING_KEY_ENCRYPTION_KEYS / SESSION_STATE_KEYS, then names the older keys
 * nothing uses any more. `--check` only reports. Exits 1 while anything is
 * not under its newest key, so a script can wait before removing old keys.
 * Procedure: docs/keys.md.
 */
async function main(): Promise<number> {
  let check: boolean;
  try {
    check = parseArgs({ args: process.argv.slice(2), options: { check: { type: 'boolean' } } }).values.check ?? false;
  } catch {
    throw new StartupError('usage: npm run keys:rotate [-- --check]');
  }
  const config = loadConfig(process.env);
  const logger = createLogger({ level: 'warn', pretty: false, name: 'keys-rotate' });
  const database = await openDatabase(databaseTarget(config), entities, logger);
  try {
    await migrate(database, logger);
    const localDir = await localFilesDir(database, config.dataDir, logger);
    const keys = {
      signing: new SigningKeyVault(
        loadSigningKeyEncryptionKeys(config.auth.signingKeyEncryptionKeys, localDir, logger),
      ),
      authStates: createAuthStateCipher(loadStateKeys(config.sessionStateKeys, localDir, logger)),
    };
    const report = await rotateKeys(database.orm, keys, { check });
    process.stdout.write(`${describeRotation(report).join('\n')}\n`);
    return report.done ? 0 : 1;
  } finally {
    await database.close();
  }
}

// One line whatever happens: a driver error's message quotes the statement, sealed keys included.
try {
  process.exitCode = await main();
} catch (error) {
  const expected = error instanceof StartupError || error instanceof KeyUnavailableError;
  process.stderr.write(`switchboard keys:rotate: ${expected ? error.message : `failed: ${describeError(error)}`}\n`);
  process.exit(1);
}
