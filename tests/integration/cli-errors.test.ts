import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../lib/logger.js';
import { entities } from '../../src/entities.js';
import { migrate, openDatabase } from '../../src/platform/db/database.js';
import { createTestDatabase, type TestDatabase } from '../support/services.js';

const logger = createLogger({ level: 'silent', pretty: false });
const key = () => `k1:${randomBytes(32).toString('base64')}`;

/**
 * The operators' commands end in one line whatever fails: a database
 * driver's error quotes its statement with the values inlined (a password
 * hash, sealed keys), which must not reach a terminal or a CI log.
 */
describe('command-line tools on a database error (real PostgreSQL)', () => {
  let testDb: TestDatabase;
  beforeEach(async () => {
    testDb = await createTestDatabase();
    const database = await openDatabase({ kind: 'postgresql', url: testDb.url, poolMax: 1 }, entities, logger);
    await migrate(database, logger);
    await database.close();
    const client = new pg.Client({ connectionString: testDb.url });
    await client.connect();
    await client.query(`create function refuse_write() returns trigger language plpgsql
                          as $$ begin raise exception 'writes are refused here'; end $$`);
    await client.query('create trigger refuse before insert on app_user for each row execute function refuse_write()');
    await client.end();
  });
  afterEach(async () => {
    await testDb?.drop();
  });

  it('admin:create prints one line with the database’s message, never the statement or the password hash', async () => {
    const cli = fileURLToPath(new URL('../../src/identity/admin-create.cli.ts', import.meta.url));
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', cli, '--email', 'root@example.com', '--password', 'a-long-enough-password'],
      {
        env: {
          ...process.env,
          DATABASE_URL: testDb.url,
          SIGNING_KEY_ENCRYPTION_KEYS: key(),
          SESSION_STATE_KEYS: key(),
          NODE_ENV: 'production',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(1);
    expect(output.trim().split('\n')).toEqual([
      expect.stringMatching(/^switchboard admin:create: .*writes are refused here/),
    ]);
    expect(output).not.toMatch(/argon2|insert into|app_user/);
  }, 60_000);
});
