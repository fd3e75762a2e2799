import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import pg from 'pg';
import { ManualClock } from '../../lib/clock.js';
import { startControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { postJsonFrom } from '../support/loopback.js';
import { TEST_REDIS_URL } from '../support/services.js';
import { signUp } from '../support/tenants.js';

const rpc = (service: string, method: string) => `switchboard.v1.${service}/${method}`;
const LOCKOUT_S = 900;

interface AuditRow {
  action: string;
  target_id: string;
  details: Record<string, string>;
}

// Clients are told apart by their loopback address; time is a fake clock the
// tests move, so no test waits for a delay or a lock-out to pass.
describe('login throttling and failed-login audit (PostgreSQL + Redis, fake clock)', () => {
  const clock = new ManualClock(new Date());
  let cp: TestControlPlane;
  beforeAll(async () => {
    cp = await startControlPlane({
      clock,
      env: {
        RATE_LIMIT_ANONYMOUS_PER_MINUTE: '100000',
        LOGIN_MAX_FAILURES: '8',
        LOGIN_MAX_FAILURES_PER_IP: '1000',
        LOGIN_LOCKOUT_MS: String(LOCKOUT_S * 1000),
        LOGIN_DELAY_AFTER_FAILURES: '3',
        LOGIN_DELAY_BASE_MS: '1000',
        LOGIN_DELAY_MAX_MS: '8000',
      },
    });
  });
  afterAll(async () => {
    await cp?.close();
  });

  const loginFrom = (ip: string, email: string, password: string) =>
    postJsonFrom(ip, cp.httpUrl, rpc('AuthService', 'Login'), { email, password });

  /** Fails from `ip` until that IP is locked out of the account, waiting out every delay on the fake clock. */
  async function failUntilLockedOut(ip: string, email: string): Promise<{ retryAfter: number }> {
    for (let i = 0; i < 100; i++) {
      const result = await loginFrom(ip, email, 'wrong-password');
      if (result.status === 401) continue;
      expect(result.status).toBe(429);
      const retryAfter = Number(result.headers['retry-after']);
      if (retryAfter > 60) return { retryAfter };
      clock.advance(retryAfter * 1000);
    }
    throw new Error(`${ip} was never locked out`);
  }

  /** Every audit row as stored, read past the API so that nothing is hidden by the mapping. */
  async function auditRows(): Promise<AuditRow[]> {
    const client = new pg.Client({ connectionString: cp.databaseUrl });
    await client.connect();
    try {
      return (await client.query<AuditRow>('select * from audit_event')).rows;
    } finally {
      await client.end();
    }
  }

  it('lets the owner in at once from an IP that has not failed, after attackers from other IPs exhausted theirs', async () => {
    const owner = await signUp(cp.httpUrl, 'besieged');
    for (const attacker of ['127.0.0.2', '127.0.0.4', '127.0.0.5']) await failUntilLockedOut(attacker, owner.email);
    const ok = await loginFrom('127.0.0.3', owner.email, owner.password);
    expect(ok.status).toBe(200);
  });

  it('refuses the IP that kept failing, even with the right password, with retry-after until its lock-out ends', async () => {
    const owner = await signUp(cp.httpUrl, 'locked-ip');
    const { retryAfter } = await failUntilLockedOut('127.0.0.6', owner.email);
    expect(retryAfter).toBe(LOCKOUT_S);
    const refused = await loginFrom('127.0.0.6', owner.email, owner.password);
    expect(refused.status).toBe(429);
    expect(refused.json.code).toBe('resource_exhausted');
    expect(String(refused.json.message)).toMatch(/too many failed attempts; try again in \d+ s/);
    expect(Number(refused.headers['retry-after'])).toBe(LOCKOUT_S);
    clock.advance(LOCKOUT_S * 1000 - 1000);
    expect((await loginFrom('127.0.0.6', owner.email, owner.password)).status).toBe(429);
    clock.advance(1000);
    expect((await loginFrom('127.0.0.6', owner.email, owner.password)).status).toBe(200);
  });

  it('slows an IP that failed on an account with delays that double up to the cap, and never slows a fresh IP', async () => {
    const owner = await signUp(cp.httpUrl, 'slowed');
    const ip = '127.0.0.7';
    for (let i = 0; i < 3; i++) expect((await loginFrom(ip, owner.email, 'wrong-password')).status).toBe(401);
    const waits: number[] = [];
    for (let i = 0; i < 5; i++) {
      const refused = await loginFrom(ip, owner.email, 'wrong-password');
      expect(refused.status).toBe(429);
      const wait = Number(refused.headers['retry-after']);
      waits.push(wait);
      // The wait is exact: a millisecond early is still too early.
      clock.advance(wait * 1000 - 1);
      expect((await loginFrom(ip, owner.email, 'wrong-password')).status).toBe(429);
      clock.advance(1);
      expect((await loginFrom(ip, owner.email, 'wrong-password')).status).toBe(401);
    }
    expect(waits).toEqual([1, 2, 4, 8, 8]);
    // That IP has used up its failures; the account's gate is shut for 8 s,
    // but an IP that has not failed on the account is not held up.
    expect((await loginFrom(ip, owner.email, owner.password)).status).toBe(429);
    expect((await loginFrom('127.0.0.8', owner.email, 'wrong-password')).status).toBe(401);
    expect((await loginFrom('127.0.0.9', owner.email, owner.password)).status).toBe(200);
  });

  it('counts failed ChangePassword attempts per user, apart from logins, which they never hold up', async () => {
    const owner = await signUp(cp.httpUrl, 'oracle');
    const change = () =>
      postJsonFrom(
        '127.0.0.1',
        cp.httpUrl,
        rpc('AuthService', 'ChangePassword'),
        { currentPassword: 'a-wrong-guess', newPassword: 'a-brand-new-password' },
        owner.accessToken,
      );
    for (let i = 0; i < 8; i++) expect((await change()).status).toBe(403);
    const refused = await change();
    expect(refused.status).toBe(429);
    expect(Number(refused.headers['retry-after'])).toBe(LOCKOUT_S);
    expect((await loginFrom('127.0.0.1', owner.email, owner.password)).status).toBe(200);
  });

  it('refuses a password typed into the email field with INVALID_ARGUMENT, and stores it nowhere', async () => {
    const secret = `Tr0ub4dor-${randomBytes(6).toString('hex')}`;
    const refused = await loginFrom('127.0.0.1', secret, 'the-email-went-here');
    expect(refused.status).toBe(400);
    expect(refused.json.code).toBe('invalid_argument');
    expect(String(refused.json.message)).toContain('email');
    expect(String(refused.json.message)).not.toContain(secret);
    expect(JSON.stringify(await auditRows())).not.toContain(secret);
    const redis = new Redis(TEST_REDIS_URL);
    try {
      expect((await redis.keys(`${cp.redisPrefix}*`)).join('\n')).not.toContain(secret);
    } finally {
      redis.disconnect();
    }
  });

  it('audits a failed login on an unknown email masked, and on a known user by id only', async () => {
    const unknown = `someone-${randomBytes(4).toString('hex')}@nowhere.example.com`;
    expect((await loginFrom('127.0.0.1', unknown, 'whatever-pass')).status).toBe(401);
    const known = await signUp(cp.httpUrl, 'mistyped');
    expect((await loginFrom('127.0.0.1', known.email, 'whatever-pass')).status).toBe(401);

    const rows = await auditRows();
    expect(JSON.stringify(rows)).not.toContain(unknown);
    expect(JSON.stringify(rows)).not.toContain(known.email);
    const failed = rows.filter((row) => row.action === 'auth.login.failed');
    expect(failed).toContainEqual(
      expect.objectContaining({ target_id: '', details: { reason: 'unknown email', maskedEmail: 's***@n***.com' } }),
    );
    expect(failed).toContainEqual(
      expect.objectContaining({ target_id: known.ownerId, details: { reason: 'wrong password' } }),
    );
  });
});
