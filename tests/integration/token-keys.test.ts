import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import argon2 from 'argon2';
import pg from 'pg';
import { SignJWT, createLocalJWKSet, exportJWK, generateKeyPair, jwtVerify, type CryptoKey } from 'jose';
import { systemScheduler } from '../../lib/timers.js';
import { loadConfig } from '../../src/config.js';
import { ManualClock, type Clock } from '../../lib/clock.js';
import { MemoryCoordinationStore } from '../../src/platform/coordination/memory-store.js';
import { migrate, openDatabase, type Database } from '../../src/platform/db/database.js';
import { entities } from '../../src/entities.js';
import { StartupError } from '../../lib/errors.js';
import { createLogger } from '../../lib/logger.js';
import { createIdentity } from '../../src/identity/identity.module.js';
import { PasswordHasher } from '../../src/identity/password-hasher.js';
import { SigningKeyVault } from '../../src/identity/signing-key-vault.js';
import { TokenService } from '../../src/identity/token.service.js';
import { postJson, startControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { createTestDatabase, TEST_REDIS_URL, type TestDatabase } from '../support/services.js';

const logger = createLogger({ level: 'silent', pretty: false });
const DAY = 24 * 3600_000;
const kek = (id: string) => `${id}:${randomBytes(32).toString('base64')}`;

describe('signing keys and password hashes', () => {
  let testDb: TestDatabase;
  let database: Database;
  const vault = new SigningKeyVault([{ id: 'k1', key: randomBytes(32) }]);
  beforeAll(async () => {
    testDb = await createTestDatabase();
    database = await openDatabase({ kind: 'postgresql', url: testDb.url, poolMax: 2 }, entities, logger);
    await migrate(database, logger);
  });
  afterAll(async () => {
    await database?.close();
    await testDb?.drop();
  });

  it('rotates the signing key by age while tokens signed by the old key keep verifying', async () => {
    const clock = new ManualClock(new Date());
    const options = { accessTokenTtlMs: 15 * 60_000, workerCredentialTtlMs: 30 * DAY, keyRotationMs: 10 * DAY };
    const tokens = new TokenService(database.orm, clock, options, logger, vault);
    await tokens.refreshKeys();
    const before = await tokens.issueWorkerCredential({ workerId: 'w-1', generation: 1 });
    const firstKid = tokens.jwks().keys[0]?.kid;

    clock.advance(11 * DAY);
    // Another replica, started later, shares the keys through PostgreSQL.
    const replica = new TokenService(database.orm, clock, options, logger, vault);
    await replica.refreshKeys();
    const after = await replica.issueWorkerCredential({ workerId: 'w-2', generation: 1 });
    const kids = replica.jwks().keys.map((key) => key.kid);
    expect(kids).toHaveLength(2);
    expect(kids).toContain(firstKid);

    // Both verify on both replicas: nobody is logged out by the rotation.
    expect((await replica.verifyWorkerCredential(before)).workerId).toBe('w-1');
    expect((await tokens.verifyWorkerCredential(after)).workerId).toBe('w-2');
    const { protectedHeader } = await jwtVerify(after, createLocalJWKSet(replica.jwks()), {
      audience: 'switchboard-worker',
      currentDate: clock.now(),
    });
    expect(protectedHeader.kid).not.toBe(firstKid);

    // Once every token the old key signed has expired, it leaves the JWKS.
    clock.advance(31 * DAY);
    await replica.refreshKeys();
    expect(replica.jwks().keys.map((key) => key.kid)).not.toContain(firstKid);
  });

  it('refuses tokens for the wrong audience and expired ones', async () => {
    const clock = new ManualClock(new Date());
    const tokens = new TokenService(
      database.orm,
      clock,
      { accessTokenTtlMs: 60_000, workerCredentialTtlMs: DAY, keyRotationMs: 30 * DAY },
      logger,
      vault,
    );
    const access = await tokens.issueAccessToken({ userId: 'u', tenantId: 't', sessionId: 's' });
    await expect(tokens.verifyWorkerCredential(access.token)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    clock.advance(61_000);
    await expect(tokens.verifyAccessToken(access.token)).rejects.toThrow('token expired');
  });

  it('asks for a rehash when the argon2id parameters change', async () => {
    const old = new PasswordHasher({ memoryCostKiB: 8192, timeCost: 2, parallelism: 1 });
    const hash = await old.hash('a-password-123');
    expect(hash).toMatch(/^\$argon2id\$v=19\$m=8192,t=2,p=1\$/);
    expect(old.needsRehash(hash)).toBe(false);
    const stronger = new PasswordHasher({ memoryCostKiB: 8192, timeCost: 3, parallelism: 1 });
    expect(stronger.needsRehash(hash)).toBe(true);
    expect(await stronger.verify(hash, 'a-password-123')).toBe(true);
    expect(await argon2.verify(hash, 'wrong')).toBe(false);
    expect(await stronger.verifyNothing('anything')).toBe(false);
  });
});

/** signing_key rows exactly as PostgreSQL holds them, oldest first. */
async function storedKeys(url: string): Promise<Record<string, unknown>[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<Record<string, unknown>>('select * from signing_key order by created_at')).rows;
  } finally {
    await client.end();
  }
}

async function sql(url: string, text: string, values: unknown[] = []): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(text, values);
  } finally {
    await client.end();
  }
}

/** Every row sealed under `kekId`; nothing in any column that is, or contains, a private JWK. */
function expectSealed(rows: Record<string, unknown>[], kekId: string): void {
  expect(rows.length).toBeGreaterThan(0);
  for (const row of rows) {
    expect(row.private_jwk).toBeNull();
    expect(row.private_key_kek_id).toBe(kekId);
    const ciphertext = row.private_key_ciphertext;
    if (!Buffer.isBuffer(ciphertext)) throw new Error(`no ciphertext stored for ${String(row.kid)}`);
    expect(() => JSON.parse(ciphertext.toString('utf8')) as unknown).toThrow();
    for (const value of Object.values(row)) {
      const text = Buffer.isBuffer(value) ? value.toString('latin1') : JSON.stringify(value);
      expect(text).not.toMatch(/"d"\s*:/);
    }
  }
}

/** The Identity capability as the composition root builds it, keyed with `keys`. */
async function startTokens(database: Database, keys: string, clock: Clock): Promise<TokenService> {
  const config = loadConfig({
    SIGNING_KEY_ENCRYPTION_KEYS: keys,
    SIGNING_KEY_ROTATION_MS: String(10 * DAY),
    WORKER_CREDENTIAL_TTL_MS: String(30 * DAY),
  });
  const store = new MemoryCoordinationStore(clock);
  const identity = await createIdentity(config, {
    orm: database.orm,
    store,
    clock,
    scheduler: systemScheduler,
    random: Math.random,
    logger,
    // Unused: the keys are configured.
    localDir: '/nonexistent',
  });
  return identity.tokens;
}

describe('signing keys at rest', () => {
  let testDb: TestDatabase;
  let database: Database;
  beforeEach(async () => {
    testDb = await createTestDatabase();
    database = await openDatabase({ kind: 'postgresql', url: testDb.url, poolMax: 2 }, entities, logger);
  });
  afterEach(async () => {
    await database?.close();
    await testDb?.drop();
  });

  it('stores the private key sealed: no private JWK member, nothing that parses as JSON', async () => {
    await migrate(database, logger);
    const k1 = kek('k1');
    const tokens = await startTokens(database, k1, new ManualClock(new Date()));
    const credential = await tokens.issueWorkerCredential({ workerId: 'w-1', generation: 1 });
    const rows = await storedKeys(testDb.url);
    expectSealed(rows, 'k1');
    // The private scalar itself appears nowhere in the row, in any encoding.
    const { d } = await new SigningKeyVault([{ id: 'k1', key: Buffer.from(k1.slice(3), 'base64') }]).open(
      database.orm.em.fork(),
      String(rows[0]?.kid),
    );
    expect(d).toMatch(/^[\w-]{43}$/);
    const raw = Buffer.from(d ?? '', 'base64url');
    for (const value of Object.values(rows[0] ?? {})) {
      const bytes = Buffer.isBuffer(value) ? value : Buffer.from(JSON.stringify(value) ?? '');
      expect(bytes.includes(raw) || bytes.includes(Buffer.from(d ?? ''))).toBe(false);
    }
    expect((await tokens.verifyWorkerCredential(credential)).workerId).toBe('w-1');
  });

  it('re-encrypts every private key under a key-encryption key put first, after which the old one can go', async () => {
    await migrate(database, logger);
    const [k1, k2] = [kek('k1'), kek('k2')];
    const clock = new ManualClock(new Date());
    const first = await startTokens(database, k1, clock);
    const before = await first.issueWorkerCredential({ workerId: 'w-1', generation: 1 });
    clock.advance(11 * DAY); // a second signing key takes over
    const later = await first.issueWorkerCredential({ workerId: 'w-2', generation: 1 });
    const sealedUnderK1 = await storedKeys(testDb.url);
    expect(sealedUnderK1).toHaveLength(2);
    expectSealed(sealedUnderK1, 'k1');

    // Every replica restarts with k2 first and k1 after it: they re-encrypt at start.
    const rotating = await startTokens(database, `${k2},${k1}`, clock);
    const resealed = await storedKeys(testDb.url);
    expectSealed(resealed, 'k2');
    expect(resealed.map((row) => row.private_key_iv)).not.toContainEqual(sealedUnderK1[0]?.private_key_iv);
    expect((await rotating.verifyWorkerCredential(before)).workerId).toBe('w-1');

    // Then k1 can be dropped: tokens keep verifying and the signing key still signs.
    const rotated = await startTokens(database, k2, clock);
    expect((await rotated.verifyWorkerCredential(before)).workerId).toBe('w-1');
    expect((await rotated.verifyWorkerCredential(later)).workerId).toBe('w-2');
    const fresh = await rotated.issueWorkerCredential({ workerId: 'w-3', generation: 1 });
    expect((await first.verifyWorkerCredential(fresh)).workerId).toBe('w-3');

    // A replica still on k1 alone is refused, by key id.
    const stale = startTokens(database, k1, clock);
    await expect(stale).rejects.toBeInstanceOf(StartupError);
    await expect(stale).rejects.toThrow(
      /^signing keys \S+, \S+ are sealed with key k2, which SIGNING_KEY_ENCRYPTION_KEYS does not contain \(it has k1\)/,
    );
  });

  it('seals private keys that an earlier version stored in plaintext, at start, and none remain', async () => {
    // The schema as the previous release left it, with a key it created.
    await database.orm.getMigrator().up({ to: 'Migration20261126040000SessionRetryBackoff' });
    const now = new Date();
    const legacy = await insertPlaintextKey(testDb.url, now);
    const legacyToken = await signWorkerCredential(legacy.privateKey, legacy.kid, now);

    await migrate(database, logger);
    const clock = new ManualClock(now);
    const tokens = await startTokens(database, kek('k1'), clock);
    expectSealed(await storedKeys(testDb.url), 'k1');
    // Its tokens still verify, and it goes on signing until its rotation is due.
    expect((await tokens.verifyWorkerCredential(legacyToken)).workerId).toBe('w-legacy');
    const fresh = await tokens.issueWorkerCredential({ workerId: 'w-1', generation: 1 });
    expect(JSON.parse(Buffer.from(fresh.split('.')[0] ?? '', 'base64url').toString()).kid).toBe(legacy.kid);

    // During a rolling upgrade a replica of the earlier version makes a new key, in plaintext:
    // the first upgraded replica to load it seals it.
    clock.advance(60_000);
    await sql(testDb.url, `update signing_key set sign_until = $1`, [clock.now()]);
    await insertPlaintextKey(testDb.url, clock.now());
    await tokens.refreshKeys();
    await tokens.issueAccessToken({ userId: 'u', tenantId: null, sessionId: 's' });
    const rows = await storedKeys(testDb.url);
    expect(rows).toHaveLength(2);
    expectSealed(rows, 'k1');
  });

  it('does not open a sealed private key copied onto another key row', async () => {
    await migrate(database, logger);
    const k1 = kek('k1');
    const clock = new ManualClock(new Date());
    const tokens = await startTokens(database, k1, clock);
    clock.advance(11 * DAY);
    await tokens.issueWorkerCredential({ workerId: 'w-1', generation: 1 });
    const [older, newer] = await storedKeys(testDb.url);
    await sql(
      testDb.url,
      `update signing_key set private_key_iv = $1, private_key_ciphertext = $2, private_key_tag = $3 where kid = $4`,
      [older?.private_key_iv, older?.private_key_ciphertext, older?.private_key_tag, newer?.kid],
    );
    await expect(startTokens(database, k1, clock)).rejects.toThrow(
      `signing key ${String(newer?.kid)} does not decrypt with key k1`,
    );
  });
});

describe('control planes sharing a database', () => {
  const shared = kek('shared');
  let a: TestControlPlane;
  let b: TestControlPlane | undefined;
  beforeAll(async () => {
    a = await startControlPlane({ env: { SIGNING_KEY_ENCRYPTION_KEYS: shared } });
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
  });

  it('verify each other’s tokens when they share the key-encryption key', async () => {
    b = await startControlPlane({ replicaOf: a, env: { SIGNING_KEY_ENCRYPTION_KEYS: shared } });
    for (const [server, token] of [
      [b, a.adminToken],
      [a, b.adminToken],
    ] as const) {
      const { status, json } = await postJson(server.httpUrl, 'switchboard.v1.AuthService/GetMe', {}, token);
      expect(status, JSON.stringify(json)).toBe(200);
    }
    expectSealed(await storedKeys(a.databaseUrl), 'shared');
  });

  it('refuse a replica without the key-encryption key that sealed the keys, naming ids only', async () => {
    const other = kek('other');
    const started = startControlPlane({ replicaOf: a, env: { SIGNING_KEY_ENCRYPTION_KEYS: other } });
    await expect(started).rejects.toBeInstanceOf(StartupError);
    await expect(started).rejects.toThrow(
      /^signing key \S+ is sealed with key shared, which SIGNING_KEY_ENCRYPTION_KEYS does not contain \(it has other\)/,
    );
    const message = await started.catch((error: Error) => error.message);
    expect(message).not.toContain(other.slice(6));
    expect(message).not.toContain(shared.slice(7));
  });

  it('stop a replica whose key-encryption key has the same id but other bytes, with one line on stderr', async () => {
    const impostor = kek('shared');
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', fileURLToPath(new URL('../../src/main.ts', import.meta.url))],
      {
        env: {
          ...process.env,
          HOST: '127.0.0.1',
          HTTP_PORT: '0',
          GRPC_PORT: '0',
          DATABASE_URL: a.databaseUrl,
          REDIS_URL: TEST_REDIS_URL,
          REDIS_KEY_PREFIX: a.redisPrefix,
          SIGNING_KEY_ENCRYPTION_KEYS: impostor,
          LOG_LEVEL: 'silent',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => {
      // Still running after this long means it started: the failure this test is about.
      const timer = setTimeout(() => child.kill('SIGTERM'), 20_000);
      child.once('exit', (exitCode) => {
        clearTimeout(timer);
        resolve(exitCode);
      });
    });
    expect(code).toBe(1);
    expect(stderr).toMatch(
      /^switchboard: signing key \S+ does not decrypt with key shared: this replica's shared differs from the one that sealed it/,
    );
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).not.toContain(impostor.slice(7));
  });
});

/** A signing key as versions before encryption stored it: the private JWK in plaintext. */
async function insertPlaintextKey(url: string, now: Date): Promise<{ kid: string; privateKey: CryptoKey }> {
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
  const kid = `legacy-${randomBytes(4).toString('hex')}`;
  await sql(
    url,
    `insert into signing_key (kid, algorithm, public_jwk, private_jwk, created_at, sign_until, verify_until)
       values ($1, 'ES256', $2, $3, $4, $5, $6)`,
    [
      kid,
      await exportJWK(publicKey),
      await exportJWK(privateKey),
      now,
      new Date(now.getTime() + 10 * DAY),
      new Date(now.getTime() + 40 * DAY),
    ],
  );
  return { kid, privateKey };
}

function signWorkerCredential(key: CryptoKey, kid: string, now: Date): Promise<string> {
  const seconds = Math.floor(now.getTime() / 1000);
  return new SignJWT({ gen: 1 })
    .setProtectedHeader({ alg: 'ES256', kid, typ: 'JWT' })
    .setIssuer('switchboard')
    .setAudience('switchboard-worker')
    .setSubject('w-legacy')
    .setIssuedAt(seconds)
    .setExpirationTime(seconds + 3600)
    .sign(key);
}
