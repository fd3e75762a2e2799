import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import pg from 'pg';
import { describeRotation, rotateKeys } from '../../src/admin/key-rotation.js';
import { SigningKeyVault } from '../../src/identity/signing-key-vault.js';
import { TokenService } from '../../src/identity/token.service.js';
import { ManualClock } from '../../lib/clock.js';
import type { EncryptionKey } from '../../src/platform/crypto/envelope-cipher.js';
import { migrate, openDatabase, type Database } from '../../src/platform/db/database.js';
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

describe('key rotation (npm run keys:rotate)', () => {
  let testDb: TestDatabase;
  let database: Database;
  beforeEach(async () => {
    testDb = await createTestDatabase();
    database = await openDatabase({ kind: 'postgresql', url: testDb.url, poolMax: 2 }, entities, logger);
    await migrate(database, logger);
  });
  afterEach(async () => {
    await database?.close();
    await testDb?.drop();
  });

  /** Sessions of one tenant, each with an auth state sealed by `cipher`. */
  async function sessionsWithAuthState(cipher: AuthStateCipher, count: number): Promise<Map<string, string>> {
    const tenantId = randomUUID();
    const now = new Date();
    await query(testDb.url, `insert into tenant (id, name, plan, created_at) values ($1, 'acme', 'free', $2)`, [
      tenantId,
      now,
    ]);
    const states = new Map<string, string>();
    for (let i = 0; i < count; i += 1) {
      const id = randomUUID();
      await query(
        testDb.url,
        `insert into session (id, tenant_id, name, engine, status, created_at, updated_at)
           values ($1, $2, $3, 'sandbox', 'STOPPED', $4, $4)`,
        [id, tenantId, `s${i}`, now],
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
    expect(await keyIds(testDb.url)).toEqual({ signing: ['s1'], authStates: ['a1', 'a1', 'a1'] });

    const report = await rotateKeys(database.orm, newKeys, { check: false });
    expect(report.done).toBe(true);
    expect(report.removable).toEqual([
      { variable: 'SIGNING_KEY_ENCRYPTION_KEYS', keyId: 's1' },
      { variable: 'SESSION_STATE_KEYS', keyId: 'a1' },
    ]);
    expect(await keyIds(testDb.url)).toEqual({ signing: ['s2'], authStates: ['a2', 'a2', 'a2'] });
    expect(describeRotation(report)).toContain(
      'Nothing is sealed with s1 (SIGNING_KEY_ENCRYPTION_KEYS), a1 (SESSION_STATE_KEYS) any more: remove them from every replica.',
    );

    // With the old keys gone everything still opens, and the checkpoint versions did not move.
    const onlyNew = createAuthStateCipher([a2]);
    for (const [id, state] of states) {
      const sealed = await new SessionRepository(database.orm.em.fork()).readAuthState(id);
      expect(sealed && Buffer.from(onlyNew.open(id, sealed)).toString()).toBe(state);
    }
    expect(await versions(testDb.url)).toEqual([1, 1, 1]);
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

  it('runs from the command line and exits 0 once everything is under the newest keys', async () => {
    const [s1, s2, a1, a2] = [key('s1'), key('s2'), key('a1'), key('a2')];
    await new TokenService(database.orm, new ManualClock(), tokenOptions, logger, new SigningKeyVault([s1])).start();
    await sessionsWithAuthState(createAuthStateCipher([a1]), 1);
    const cli = fileURLToPath(new URL('../../src/admin/keys-rotate.cli.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', cli], {
      env: {
        ...process.env,
        DATABASE_URL: testDb.url,
        SIGNING_KEY_ENCRYPTION_KEYS: asVariable([s2, s1]),
        SESSION_STATE_KEYS: asVariable([a2, a1]),
        NODE_ENV: 'production',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(output).toContain('re-encrypted under s2: 1 from s1');
    expect(output).toContain('re-encrypted under a2: 1 from a1');
    expect(output).toContain('remove them from every replica');
    expect(output).not.toContain(s1.key.toString('base64'));
    expect(code).toBe(0);
    expect(await keyIds(testDb.url)).toEqual({ signing: ['s2'], authStates: ['a2'] });
  });
});

async function query<T extends pg.QueryResultRow>(url: string, text: string, values: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(text, values)).rows;
  } finally {
    await client.end();
  }
}

async function keyIds(url: string): Promise<{ signing: string[]; authStates: string[] }> {
  const signing = await query<{ id: string }>(url, 'select private_key_kek_id as id from signing_key order by kid');
  const states = await query<{ id: string }>(url, 'select key_id as id from session_auth_state order by session_id');
  return { signing: signing.map((row) => row.id), authStates: states.map((row) => row.id) };
}

async function versions(url: string): Promise<number[]> {
  return (await query<{ version: number }>(url, 'select version from session_auth_state')).map((row) => row.version);
}
