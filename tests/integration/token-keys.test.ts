import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import argon2 from 'argon2';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { ManualClock } from '../../src/platform/clock.js';
import { migrate, openDatabase, type Database } from '../../src/platform/db/database.js';
import { createLogger } from '../../src/platform/logger.js';
import { PasswordHasher } from '../../src/identity/password-hasher.js';
import { TokenService } from '../../src/identity/token.service.js';
import { createTestDatabase, type TestDatabase } from '../support/services.js';

const logger = createLogger({ level: 'silent', pretty: false });
const DAY = 24 * 3600_000;

describe('signing keys and password hashes', () => {
  let testDb: TestDatabase;
  let database: Database;
  beforeAll(async () => {
    testDb = await createTestDatabase();
    database = await openDatabase({ kind: 'postgresql', url: testDb.url, poolMax: 2 }, logger);
    await migrate(database, logger);
  });
  afterAll(async () => {
    await database?.close();
    await testDb?.drop();
  });

  it('rotates the signing key by age while tokens signed by the old key keep verifying', async () => {
    const clock = new ManualClock(new Date());
    const options = { accessTokenTtlMs: 15 * 60_000, workerCredentialTtlMs: 30 * DAY, keyRotationMs: 10 * DAY };
    const tokens = new TokenService(database.orm, clock, options, logger);
    await tokens.refreshKeys();
    const before = await tokens.issueWorkerCredential({ workerId: 'w-1', generation: 1 });
    const firstKid = tokens.jwks().keys[0]?.kid;

    clock.advance(11 * DAY);
    // Another replica, started later, shares the keys through PostgreSQL.
    const replica = new TokenService(database.orm, clock, options, logger);
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
