import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { decodeProtectedHeader } from 'jose';
import pg from 'pg';
import { createLogger } from '../../lib/logger.js';
import { ManualScheduler } from '../../lib/timers.js';
import { loadConfig } from '../../src/config.js';
import { createIdentity, KEY_REFRESH_MS, LAST_USED_FLUSH_MS } from '../../src/identity/identity.module.js';
import { MemoryCoordinationStore } from '../../src/platform/coordination/memory-store.js';
import { SigningKeyVault } from '../../src/identity/signing-key-vault.js';
import { TokenService } from '../../src/identity/token.service.js';
import { eventually, postJson, startControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { signUp } from '../support/tenants.js';

const logger = createLogger({ level: 'silent', pretty: false });
const DAY = 24 * 3600_000;

/**
 * Identity's periodic work on a fake clock (real PostgreSQL and Redis): the
 * control plane starts at the scheduler's time zero, so its timers fall due
 * at multiples of their interval, and the test moves time instead of sleeping.
 * (`eventually` only waits for the database write a timer started.)
 */
describe('identity timers on a fake clock', () => {
  const kek = randomBytes(32);
  let time: ManualScheduler;
  let cp: TestControlPlane;
  beforeEach(async () => {
    time = new ManualScheduler(new Date());
    cp = await startControlPlane({
      env: { SIGNING_KEY_ENCRYPTION_KEYS: `k1:${kek.toString('base64')}` },
      overrides: { clock: time, scheduler: time },
    });
  });
  afterEach(async () => {
    await cp?.close();
  });

  async function lastUsedAt(apiKeyId: string): Promise<Date | null> {
    const client = new pg.Client({ connectionString: cp.databaseUrl });
    await client.connect();
    try {
      const { rows } = await client.query<{ last_used_at: Date | null }>(
        'select last_used_at from api_key where id = $1',
        [apiKeyId],
      );
      return rows[0]?.last_used_at ?? null;
    } finally {
      await client.end();
    }
  }

  it('writes an API key’s last use when the flush interval has passed, not before', async () => {
    const tenant = await signUp(cp.httpUrl, 'last-used');
    const created = await postJson(
      cp.httpUrl,
      'switchboard.v1.ApiKeyService/CreateApiKey',
      { name: 'ci', role: 'ROLE_DEVELOPER' },
      tenant.accessToken,
    );
    const secret = created.json.secret as string;
    const apiKeyId = (created.json.apiKey as { id: string }).id;
    const usedAt = time.now();
    expect((await postJson(cp.httpUrl, 'switchboard.v1.AuthService/GetMe', {}, secret)).status).toBe(200);

    time.advance(LAST_USED_FLUSH_MS - 1);
    expect(await lastUsedAt(apiKeyId)).toBeNull();

    time.advance(1);
    const written = await eventually(async () => (await lastUsedAt(apiKeyId)) ?? undefined);
    expect(written.getTime()).toBe(usedAt.getTime());
  });

  it('picks up a signing key another replica rotated in when the refresh interval has passed', async () => {
    const jwksKids = async () => {
      const response = await fetch(`${cp.httpUrl}/.well-known/jwks.json`);
      return ((await response.json()) as { keys: { kid: string }[] }).keys.map((key) => key.kid);
    };
    const [first] = await jwksKids();

    // Another replica finds the signing key due for rotation and makes the next one.
    const client = new pg.Client({ connectionString: cp.databaseUrl });
    await client.connect();
    await client.query('update signing_key set sign_until = $1', [time.now()]);
    await client.end();
    const replica = new TokenService(
      cp.app.database.orm,
      time,
      { accessTokenTtlMs: 15 * 60_000, workerCredentialTtlMs: 30 * DAY, keyRotationMs: 30 * DAY },
      logger,
      new SigningKeyVault([{ id: 'k1', key: kek }]),
    );
    await replica.refreshKeys();
    const [next] = replica
      .jwks()
      .keys.map((key) => key.kid ?? '')
      .filter((kid) => kid !== first);
    expect(next).toBeDefined();

    time.advance(KEY_REFRESH_MS - 1);
    expect(await jwksKids()).toEqual([first]);

    time.advance(1);
    await eventually(async () => ((await jwksKids()).includes(next ?? '') ? true : undefined));
    const { token } = await cp.app.identity.tokens.issueAccessToken({ userId: 'u', tenantId: null, sessionId: 's' });
    expect(decodeProtectedHeader(token).kid).toBe(next);
  });

  it('leaves no timer behind once stopped', async () => {
    const own = new ManualScheduler(new Date());
    const identity = await createIdentity(loadConfig({ SIGNING_KEY_ENCRYPTION_KEYS: `k1:${kek.toString('base64')}` }), {
      orm: cp.app.database.orm,
      store: new MemoryCoordinationStore(own),
      clock: own,
      scheduler: own,
      random: () => 0.5,
      logger,
      localDir: cp.app.localDir,
    });
    await identity.start();
    await identity.stop();
    expect(own.pendingTimers).toBe(0);
  });
});
