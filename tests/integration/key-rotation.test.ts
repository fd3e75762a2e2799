import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { describeRotation, rotateKeys } from '../../src/admin/key-rotation.js';
import { SigningKeyVault } from '../../src/identity/signing-key-vault.js';
import { TokenService } from '../../src/identity/token.service.js';
import { ManualClock } from '../../lib/clock.js';
import type { EncryptionKey } from '../../src/platform/crypto/envelope-cipher.js';
import {
  databaseTarget,
  migrate,
  openDatabase,
  type Database,
  type DatabaseTarget,
} from '../../src/platform/db/database.js';
import { entities } from '../../src/entities.js';
import { createLogger } from '../../lib/logger.js';
import { createAuthStateCipher, type AuthStateCipher } from '../../src/sessions/auth-state-cipher.js';
import { SessionRepository } from '../../src/sessions/session.repository.js';
import { createTestDatabase, type TestDatabase } from '../support/services.js';

const logger = createLogger({ level: 'silent', pretty: false });
const DAY = 24 * 3600_000;
const key = (id: string): EncryptionKey => ({ id, key: randomBytes(32) });
const asVariable = (keys: EncryptionKey[]) => keys.map((k) => `${k.id}:${k.key.toString('base64')}`).join(',');
const tokenOptions = { accessTokenTtlMs: 15 * 60_000, workerCredentialTtlMs: 30 * DAY, keyRotationMs: 10 * DAY };

// PGlite hands bytea back as Uint8Array where PostgreSQL gives a Buffer: both must rotate.
describe.each(['postgresql', 'pglite'] as const)('key rotation (npm run keys:rotate) on %s', (kind) => {
  let testDb: TestDatabase | undefined;
  let dataDir: string | undefined;
  let target: DatabaseTarget;
  let database: Database;
  /** What the CLI needs to find the same database. */
  let databaseEnv: Record<string, string>;
  beforeEach(async () => {
    if (kind === 'postgresql') {
      testDb = await createTestDatabase();
      target = { kind, url: testDb.url, poolMax: 2 };
      databaseEnv = { DATABASE_URL: testDb.url };
    } else {
      dataDir = mkdtempSync(join(tmpdir(), 'sb-keys-'));
      target = databaseTarget({ databaseUrl: undefined, databasePoolMax: 2, dataDir });
      databaseEnv = { DATA_DIR: dataDir };
    }
    database = await openDatabase(target, entities, logger);
    await migrate(database, logger);
  }, 60_000);
  afterEach(async () => {
    await database?.close();
    await testDb?.drop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  const query = <T>(text: string, values: unknown[] = []) => database.orm.em.getConnection().execute<T[]>(text, values);
  const keyIds = () => keyIdsOf(query);
  const versions = async () =>
    (await query<{ version: number }>('select version from session_auth_state')).map((row) => row.version);

  /** Runs a command (the embedded database is closed meanwhile: one process at a time may open it). */
  async function run(
    script: string,
    args: string[],
    env: Record<string, string>,
  ): Promise<{ code: number | null; output: string }> {
    await database.close();
    const file = fileURLToPath(new URL(`../../src/${script}`, import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', file, ...args], {
      env: { ...process.env, ...databaseEnv, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    database = await openDatabase(target, entities, logger);
    return { code, output };
  }
  const runCli = (args: string[], env: Record<string, string>) => run('admin/keys-rotate.cli.ts', args, env);

  /** Sessions of one tenant, each with an auth state sealed by `cipher`. */
  async function sessionsWithAuthState(cipher: AuthStateCipher, count: number): Promise<Map<string, string>> {
    const tenantId = randomUUID();
    const now = new Date();
    await query(`insert into tenant (id, name, plan, created_at) values (?, 'acme', 'free', ?)`, [tenantId, now]);
    const states = new Map<string, string>();
    for (let i = 0; i < count; i += 1) {
      const id = randomUUID();
      await query(
        `insert into session (id, tenant_id, name, engine, status, created_at, updated_at)
           values (?, ?, ?, 'sandbox', 'STOPPED', ?, ?)`,
        [id, tenantId, `s${i}`, now, now],
      );
      const state = `creds of ${id}`;
      await new SessionRepository(database.orm.em.fork()).writeAuthState(id, cipher.seal(id, Buffer.from(state)), now);
      states.set(id, state);
    }
    return states;
  }

  it('re-encrypts signing keys and session auth states under the newest keys, after which the old ones can go', async () => {
    const [s1, s2, a1, a2] = [key('s1'), key('s2'), key('a1'), key('a2')];
    const clock = new ManualClock(new Date());
    const tokens = new TokenService(database.orm, clock, tokenOptions, logger, new SigningKeyVault([s1]));
    await tokens.start();
    const credential = await tokens.issueWorkerCredential({ workerId: 'w-1', generation: 1 });
    const states = await sessionsWithAuthState(createAuthStateCipher([a1]), 3);
    const newKeys = { signing: new SigningKeyVault([s2, s1]), authStates: createAuthStateCipher([a2, a1]) };

    // --check only reports.
    const check = await rotateKeys(database.orm, newKeys, { check: true });
    expect(check.done).toBe(false);
    expect(check.removable).toEqual([]);
    expect(await keyIds()).toEqual({ signing: ['s1'], authStates: ['a1', 'a1', 'a1'] });

    const report = await rotateKeys(database.orm, newKeys, { check: false });
    expect(report.done).toBe(true);
    expect(report.removable).toEqual([
      { variable: 'SIGNING_KEY_ENCRYPTION_KEYS', keyId: 's1' },
      { variable: 'SESSION_STATE_KEYS', keyId: 'a1' },
    ]);
    expect(await keyIds()).toEqual({ signing: ['s2'], authStates: ['a2', 'a2', 'a2'] });
    expect(describeRotation(report)).toContain(
      'Nothing is sealed with s1 (SIGNING_KEY_ENCRYPTION_KEYS), a1 (SESSION_STATE_KEYS) any more: remove them from every replica.',
    );

    // With the old keys gone everything still opens, and the checkpoint versions did not move.
    const onlyNew = createAuthStateCipher([a2]);
    for (const [id, state] of states) {
      const sealed = await new SessionRepository(database.orm.em.fork()).readAuthState(id);
      expect(sealed && Buffer.from(onlyNew.open(id, sealed)).toString()).toBe(state);
    }
    expect(await versions()).toEqual([1, 1, 1]);
    const rotated = new TokenService(database.orm, clock, tokenOptions, logger, new SigningKeyVault([s2]));
    await rotated.start();
    expect((await rotated.verifyWorkerCredential(credential)).workerId).toBe('w-1');
  });

  it('names auth states it cannot open, leaves them, and does not call the rotation done', async () => {
    const [lost, a1, a2] = [key('lost'), key('a1'), key('a2')];
    const [unreadable] = (await sessionsWithAuthState(createAuthStateCipher([lost]), 1)).keys();
    await sessionsWithAuthState(createAuthStateCipher([a1]), 1);
    const report = await rotateKeys(
      database.orm,
      { signing: new SigningKeyVault([key('s1')]), authStates: createAuthStateCipher([a2, a1]) },
      { check: false },
    );
    expect(report.done).toBe(false);
    const states = report.usages.find((usage) => usage.variable === 'SESSION_STATE_KEYS');
    expect(states?.unreadable).toEqual(new Map([['lost', [unreadable]]]));
    expect(states?.byKeyId).toEqual(
      new Map([
        ['lost', 1],
        ['a2', 1],
      ]),
    );
    expect(report.removable).toEqual([{ variable: 'SESSION_STATE_KEYS', keyId: 'a1' }]);
    expect(describeRotation(report).join('\n')).toContain(`cannot open 1 sealed with lost: ${unreadable}`);
  });

  it('--check refuses a signing key sealed with a key id missing from the configuration, as the real run does', async () => {
    const [local, s1] = [key('local-3f09c1d2'), key('s1')];
    await new TokenService(database.orm, new ManualClock(), tokenOptions, logger, new SigningKeyVault([local])).start();
    const [lost, a1] = [key('lost'), key('a1')];
    const [unreadable] = (await sessionsWithAuthState(createAuthStateCipher([lost]), 1)).keys();
    const keys = { signing: new SigningKeyVault([s1]), authStates: createAuthStateCipher([a1]) };
    const refusal = /sealed with key local-3f09c1d2, which SIGNING_KEY_ENCRYPTION_KEYS does not contain \(it has s1\)/;
    await expect(rotateKeys(database.orm, keys, { check: true })).rejects.toThrow(refusal);
    await expect(rotateKeys(database.orm, keys, { check: false })).rejects.toThrow(refusal);

    // With the signing key configured, --check names the auth states the real run could not open.
    const withLocal = { signing: new SigningKeyVault([s1, local]), authStates: keys.authStates };
    const check = await rotateKeys(database.orm, withLocal, { check: true });
    expect(check.usages[1]?.unreadable).toEqual(new Map([['lost', [unreadable]]]));
    expect(await keyIds()).toEqual({ signing: ['local-3f09c1d2'], authStates: ['lost'] });
  });

  it('runs from the command line and exits 0 once everything is under the newest keys', async () => {
    const [s1, s2, a1, a2] = [key('s1'), key('s2'), key('a1'), key('a2')];
    await new TokenService(database.orm, new ManualClock(), tokenOptions, logger, new SigningKeyVault([s1])).start();
    await sessionsWithAuthState(createAuthStateCipher([a1]), 1);
    const { code, output } = await runCli([], {
      SIGNING_KEY_ENCRYPTION_KEYS: asVariable([s2, s1]),
      SESSION_STATE_KEYS: asVariable([a2, a1]),
      NODE_ENV: 'production',
    });
    expect(output).toContain('re-encrypted under s2: 1 from s1');
    expect(output).toContain('re-encrypted under a2: 1 from a1');
    expect(output).toContain('remove them from every replica');
    expect(output).not.toContain(s1.key.toString('base64'));
    expect(code).toBe(0);
    expect(await keyIds()).toEqual({ signing: ['s2'], authStates: ['a2'] });
  }, 60_000);

  /** Sealed keys as stored, and a trigger making the database refuse to rewrite them. */
  async function refuseSigningKeyWrites(): Promise<string[]> {
    const rows = await query<{ iv: Uint8Array; ciphertext: Uint8Array }>(
      'select private_key_iv as iv, private_key_ciphertext as ciphertext from signing_key',
    );
    await query(`create function refuse_write() returns trigger language plpgsql
                   as $$ begin raise exception 'writes are refused here'; end $$`);
    await query('create trigger refuse before update on signing_key for each row execute function refuse_write()');
    return rows.flatMap((row) => [row.iv, row.ciphertext].map((bytes) => Buffer.from(bytes).toString('hex')));
  }

  it('prints one line, without the statement or sealed data, when the database refuses a write', async () => {
    const [s1, s2] = [key('s1'), key('s2')];
    await new TokenService(database.orm, new ManualClock(), tokenOptions, logger, new SigningKeyVault([s1])).start();
    const sealed = await refuseSigningKeyWrites();
    for (const { code, output } of [
      await runCli([], {
        SIGNING_KEY_ENCRYPTION_KEYS: asVariable([s2, s1]),
        SESSION_STATE_KEYS: asVariable([key('a')]),
      }),
      // A replica starting with the new key first re-encrypts at start: the same write, the same care.
      await run('main.ts', [], {
        SIGNING_KEY_ENCRYPTION_KEYS: asVariable([s2, s1]),
        SESSION_STATE_KEYS: asVariable([key('a')]),
        HOST: '127.0.0.1',
        HTTP_PORT: '0',
        GRPC_PORT: '0',
        LOG_LEVEL: 'silent',
      }),
    ]) {
      expect(code).toBe(1);
      expect(output.trim().split('\n')).toEqual([expect.stringContaining('writes are refused here')]);
      expect(output).toMatch(/^switchboard( keys:rotate)?: /);
      expect(output).not.toMatch(/signing_key"|private_key|\\x/);
      for (const hex of sealed) expect(output).not.toContain(hex);
    }
  }, 90_000);

  it('starts with a new key put first and re-encrypts the signing keys on the way', async () => {
    const [s1, s2] = [key('s1'), key('s2')];
    const clock = new ManualClock(new Date());
    const tokens = new TokenService(database.orm, clock, tokenOptions, logger, new SigningKeyVault([s1]));
    await tokens.start();
    const credential = await tokens.issueWorkerCredential({ workerId: 'w-1', generation: 1 });
    const restarted = new TokenService(database.orm, clock, tokenOptions, logger, new SigningKeyVault([s2, s1]));
    await restarted.start();
    expect((await keyIds()).signing).toEqual(['s2']);
    expect((await restarted.verifyWorkerCredential(credential)).workerId).toBe('w-1');
  });
});

async function keyIdsOf(
  query: <T>(text: string) => Promise<T[]>,
): Promise<{ signing: string[]; authStates: string[] }> {
  const signing = await query<{ id: string }>('select private_key_kek_id as id from signing_key order by kid');
  const states = await query<{ id: string }>('select key_id as id from session_auth_state order by session_id');
  return { signing: signing.map((row) => row.id), authStates: states.map((row) => row.id) };
}
