import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../lib/logger.js';
import { entities } from '../../src/entities.js';
import { migrate, openDatabase, type Database } from '../../src/platform/db/database.js';
import { localFilesDir } from '../../src/platform/db/local-files.js';
import { startControlPlane } from '../support/control-plane.js';
import { captureLogs } from '../support/logs.js';
import { createTestDatabase, type TestDatabase } from '../support/services.js';

const silent = createLogger({ level: 'silent', pretty: false });

/**
 * One checkout pointed at one database and then another (the embedded one,
 * then DATABASE_URL): the files a developer setup keeps beside a database
 * (generated keys, the local agent's credential) belong to that database and
 * are never picked up by another.
 */
describe("each database's local files are kept apart (real PostgreSQL)", () => {
  let dataDir: string;
  const cleanups: (() => Promise<void>)[] = [];
  beforeEach(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'sb-local-files-'));
  });
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const migrated = async (db: Pick<TestDatabase, 'url'>): Promise<Database> => {
    const database = await openDatabase({ kind: 'postgresql', url: db.url, poolMax: 1 }, entities, silent);
    cleanups.push(() => database.close());
    await migrate(database, silent);
    return database;
  };
  const testDatabase = async (): Promise<TestDatabase> => {
    const db = await createTestDatabase();
    cleanups.push(() => db.drop());
    return db;
  };

  it('gives two databases two folders, each with its own generated keys, and one database the same folder every time', async () => {
    // Each on its own fresh database, both with the same DATA_DIR and no keys configured.
    const first = await startControlPlane({ env: { DATA_DIR: dataDir } });
    cleanups.push(() => first.close());
    const second = await startControlPlane({ env: { DATA_DIR: dataDir } });
    cleanups.push(() => second.close());

    expect(first.app.localDir).toMatch(new RegExp(`^${dataDir}/databases/[0-9a-f-]{36}$`));
    expect(second.app.localDir).toMatch(new RegExp(`^${dataDir}/databases/[0-9a-f-]{36}$`));
    expect(first.app.localDir).not.toBe(second.app.localDir);
    const key = (dir: string, file: string) => readFileSync(join(dir, file), 'utf8');
    for (const file of ['session-state.key', 'signing-key-encryption.key']) {
      expect(key(first.app.localDir, file)).not.toBe(key(second.app.localDir, file));
    }
    // Nothing is left in DATA_DIR itself for the next database to pick up.
    expect(existsSync(join(dataDir, 'session-state.key'))).toBe(false);

    // The same database, opened again (another start, another replica): the same folder.
    expect(await localFilesDir(await migrated({ url: first.databaseUrl }), dataDir, silent)).toBe(first.app.localDir);
  });

  it('keeps the embedded database’s files beside it in DATA_DIR', async () => {
    const embedded = await startControlPlane({ embedded: true });
    cleanups.push(() => embedded.close());
    expect(embedded.app.database.kind).toBe('pglite');
    expect(embedded.app.localDir).toBe(resolve(embedded.app.config.dataDir));
    expect(existsSync(join(embedded.app.localDir, 'pglite'))).toBe(true);
    expect(existsSync(join(embedded.app.localDir, 'session-state.key'))).toBe(true);
  });

  it('tells the developer about keys left in DATA_DIR by an earlier PostgreSQL setup instead of guessing whose they are', async () => {
    writeFileSync(join(dataDir, 'session-state.key'), 'earlier');
    mkdirSync(join(dataDir, 'agent'));
    const capture = captureLogs('warn');
    const dir = await localFilesDir(await migrated(await testDatabase()), dataDir, capture.logger);
    expect(capture.lines()).toEqual([
      expect.objectContaining({
        found: [join(dataDir, 'session-state.key'), join(dataDir, 'agent')],
        folder: dir,
        msg: expect.stringMatching(/if they belong to this database, move them into its folder/),
      }),
    ]);
    // Left where they were: they may belong to another database.
    expect(readFileSync(join(dataDir, 'session-state.key'), 'utf8')).toBe('earlier');
  });
});
