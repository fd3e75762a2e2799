import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Code, ConnectError } from '@connectrpc/connect';
import { ManualClock } from '../../lib/clock.js';
import { eventually, postJson, startControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { RawAgentStream } from '../support/raw-stream.js';
import { signUp } from '../support/tenants.js';

const BOOTSTRAP_TOKEN = 'sbj_0123456789abcdef_bootstrapbootstrapbootstrapbootstrapbootstr';
const rpc = (service: string, method: string) => `switchboard.v1.${service}/${method}`;

describe('guard rails: rate limits, lock-outs and worker credentials', () => {
  let cp: TestControlPlane;
  // Rate-limit windows follow this clock (on real Redis); nothing else here depends on time passing.
  const clock = new ManualClock(new Date());
  beforeAll(async () => {
    cp = await startControlPlane({
      clock,
      env: {
        RATE_LIMIT_WINDOW_MS: '2000',
        RATE_LIMIT_FREE_PER_MINUTE: '5',
        RATE_LIMIT_ANONYMOUS_PER_MINUTE: '1000',
        LOGIN_MAX_FAILURES: '3',
        BOOTSTRAP_JOIN_TOKEN: BOOTSTRAP_TOKEN,
      },
    });
  });
  afterAll(async () => {
    await cp?.close();
  });

  it('refuses the call past the configured limit with RESOURCE_EXHAUSTED and retry-after, then recovers', async () => {
    const tenant = await signUp(cp.httpUrl, 'limited');
    // Sign-up counts against the caller's IP; the user's own window starts with its first call below.
    const statuses: number[] = [];
    let refused: Awaited<ReturnType<typeof postJson>> | undefined;
    for (let i = 0; i < 6; i++) {
      const result = await postJson(cp.httpUrl, rpc('AuthService', 'GetMe'), {}, tenant.accessToken);
      statuses.push(result.status);
      if (result.status !== 200) refused = result;
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429]);
    expect(refused?.json.code).toBe('resource_exhausted');
    expect(Number(refused?.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(refused?.headers.get('ratelimit-limit')).toBe('5');
    // The window is counted on the control plane's clock: move it past retry-after instead of sleeping.
    clock.advance(Number(refused?.headers.get('retry-after')) * 1000);
    const recovered = await postJson(cp.httpUrl, rpc('AuthService', 'GetMe'), {}, tenant.accessToken);
    expect(recovered.status).toBe(200);
    expect(recovered.headers.get('ratelimit-remaining')).toBe('4');
  });

  it('counts parallel guesses before checking them, so a burst cannot get past the lock-out', async () => {
    const tenant = await signUp(cp.httpUrl, 'burst');
    const statuses = await Promise.all(
      Array.from({ length: 20 }, () =>
        postJson(cp.httpUrl, rpc('AuthService', 'Login'), { email: tenant.email, password: 'wrong-guess' }).then(
          (r) => r.status,
        ),
      ),
    );
    expect(statuses.filter((s) => s === 401).length).toBeLessThanOrEqual(3);
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(17);
  });

  it('refuses request bodies over the size limit without reading them whole', async () => {
    const { status, json } = await postJson(cp.httpUrl, rpc('AuthService', 'Login'), {
      email: 'a@b.c',
      password: 'x'.repeat(2 * 1024 * 1024),
    });
    expect(status).toBe(429);
    expect(json.code).toBe('resource_exhausted');
    expect(String(json.message)).toContain('is larger than');
  });

  it('refuses NUL characters in strings with INVALID_ARGUMENT, not an internal error', async () => {
    const { status, json } = await postJson(cp.httpUrl, rpc('AuthService', 'SignUp'), {
      email: 'nul@example.com',
      password: 'a-long-enough-password',
      displayName: 'a\u0000b',
      tenantName: 'x',
    });
    expect(status).toBe(400);
    expect(String(json.message)).toContain('display_name');
  });

  describe('worker streams', () => {
    const refusedWith = async (stream: RawAgentStream) =>
      stream.next().then(
        () => undefined,
        (error: unknown) => ConnectError.from(error),
      );
    /** Waits (for I/O, not for a timing rule) until the worker's stream end is recorded. */
    const offline = (name: string) =>
      eventually(async () => {
        const { json } = await postJson(
          cp.httpUrl,
          rpc('AdminService', 'ListWorkers'),
          { pageSize: 1000 },
          cp.adminToken,
        );
        const workers = (json.workers as { name: string; status: string }[] | undefined) ?? [];
        return workers.some((w) => w.name === name && w.status === 'WORKER_STATUS_OFFLINE') ? true : undefined;
      });
    const workerCount = async () => {
      const { json } = await postJson(
        cp.httpUrl,
        rpc('AdminService', 'ListWorkers'),
        { pageSize: 1000 },
        cp.adminToken,
      );
      return ((json.workers as unknown[] | undefined) ?? []).length;
    };

    it('refuses a Hello without credentials, and stores nothing', async () => {
      const before = await workerCount();
      const stream = new RawAgentStream(cp.grpcUrl);
      stream.hello('no-credentials');
      expect((await refusedWith(stream))?.code).toBe(Code.Unauthenticated);
      expect(await workerCount()).toBe(before);
    });

    it('accepts the pre-shared BOOTSTRAP_JOIN_TOKEN for several agents', async () => {
      for (const name of ['bootstrap-a', 'bootstrap-b']) {
        const stream = new RawAgentStream(cp.grpcUrl, BOOTSTRAP_TOKEN);
        stream.hello(name);
        expect((await stream.next()).payload.case).toBe('welcome');
        stream.end();
      }
    });

    it('refuses a bad join token and a used-up one', async () => {
      const bad = new RawAgentStream(cp.grpcUrl, 'sbj_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA');
      bad.hello('bad-token');
      expect((await refusedWith(bad))?.code).toBe(Code.Unauthenticated);

      // An expired one: its time to live is a fleet timing rule, checked on a fake clock in fleet-timing.test.ts.

      const once = await cp.joinToken(1);
      const first = new RawAgentStream(cp.grpcUrl, once);
      first.hello('single-use-a');
      expect((await first.next()).payload.case).toBe('welcome');
      const second = new RawAgentStream(cp.grpcUrl, once);
      second.hello('single-use-b');
      expect((await refusedWith(second))?.code).toBe(Code.Unauthenticated);
      first.end();
    });

    it('keeps tenant and worker credentials apart', async () => {
      const tenant = await signUp(cp.httpUrl, 'crossover');
      const asWorker = new RawAgentStream(cp.grpcUrl);
      asWorker.hello('tenant-token-as-worker', { credential: { case: 'workerCredential', value: tenant.accessToken } });
      expect((await refusedWith(asWorker))?.code).toBe(Code.Unauthenticated);

      const worker = new RawAgentStream(cp.grpcUrl, await cp.joinToken(1));
      worker.hello('real-worker');
      const welcome = await worker.next();
      const credential = welcome.payload.case === 'welcome' ? welcome.payload.value.workerCredential : '';
      expect(credential).not.toBe('');
      for (const path of [
        rpc('AdminService', 'ListWorkers'),
        rpc('AuthService', 'GetMe'),
        rpc('ApiKeyService', 'ListApiKeys'),
      ]) {
        expect((await postJson(cp.httpUrl, path, {}, credential)).status).toBe(401);
      }
      worker.end();
    });

    it('invalidates earlier worker credentials when the worker enrols again', async () => {
      const first = new RawAgentStream(cp.grpcUrl, await cp.joinToken(1));
      first.hello('re-enrolled');
      const welcome = await first.next();
      const oldCredential = welcome.payload.case === 'welcome' ? welcome.payload.value.workerCredential : '';
      first.end();
      await offline('re-enrolled');
      const again = new RawAgentStream(cp.grpcUrl, await cp.joinToken(1));
      again.hello('re-enrolled');
      expect((await again.next()).payload.case).toBe('welcome');
      again.end();
      await offline('re-enrolled');
      const stale = new RawAgentStream(cp.grpcUrl);
      stale.hello('re-enrolled', { credential: { case: 'workerCredential', value: oldCredential } });
      expect((await refusedWith(stale))?.code).toBe(Code.Unauthenticated);
    });
  });
});
