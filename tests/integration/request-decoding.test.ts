import http2 from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { postJson, startControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { captureLogs } from '../support/logs.js';
import { signUp, type TestTenant } from '../support/tenants.js';

/** A length-prefixed gRPC / gRPC-web frame. */
function frame(data: Uint8Array, flags = 0): Uint8Array {
  const out = new Uint8Array(5 + data.byteLength);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, data.byteLength);
  out.set(data, 5);
  return out;
}

/** Field 1 (a string) claims 100 bytes but the message ends: not decodable. */
const TRUNCATED = new Uint8Array([0x0a, 0x64, 0x61]);
/** Field 1 (a string) holding bytes that are not UTF-8. */
const NOT_UTF8 = new Uint8Array([0x0a, 0x02, 0xff, 0xfe]);

/** `switchboard_requests_refused_total{cause}` as GET /metrics shows it (NaN when it does not). */
async function refusedTotal(httpUrl: string, cause: string): Promise<number> {
  const text = await (await fetch(`${httpUrl}/metrics`)).text();
  const series = `switchboard_requests_refused_total{cause="${cause}"} `;
  const line = text.split('\n').find((l) => l.startsWith(series));
  return line === undefined ? Number.NaN : Number(line.slice(series.length));
}

/** One gRPC call over raw HTTP/2, with whatever bytes we like as the request. */
async function rawGrpc(
  url: string,
  path: string,
  body: Uint8Array,
  headers: Record<string, string> = {},
): Promise<{ status: string | undefined; message: string | undefined }> {
  const session = http2.connect(url);
  try {
    return await new Promise((resolve, reject) => {
      const req = session.request({
        ':method': 'POST',
        ':path': path,
        'content-type': 'application/grpc+proto',
        te: 'trailers',
        ...headers,
      });
      let status: string | undefined;
      let message: string | undefined;
      const take = (h: http2.IncomingHttpHeaders) => {
        if (h['grpc-status'] !== undefined) status = String(h['grpc-status']);
        if (h['grpc-message'] !== undefined) message = decodeURIComponent(String(h['grpc-message']));
      };
      req.on('response', take);
      req.on('trailers', take);
      req.on('data', () => undefined);
      req.on('end', () => resolve({ status, message }));
      req.on('error', reject);
      req.end(Buffer.from(body));
    });
  } finally {
    session.close();
  }
}

/**
 * Bytes that cannot be decoded, text that is not Unicode, fields and enum
 * names the API does not have: each is the caller's mistake, answered with
 * INVALID_ARGUMENT (never INTERNAL) and a log line naming the cause, on
 * every protocol, and nothing is stored.
 */
describe('requests that cannot be decoded (real PostgreSQL and Redis)', () => {
  let cp: TestControlPlane;
  let tenant: TestTenant;
  const logs = captureLogs();
  const refusalsLogged = (rpc: string) =>
    logs
      .lines()
      .filter((line) => line.rpc === rpc && line.code === 'INVALID_ARGUMENT' && typeof line.error === 'string');

  beforeAll(async () => {
    cp = await startControlPlane({ overrides: { logger: logs.logger } });
    tenant = await signUp(cp.httpUrl, 'decoding');
  });
  afterAll(async () => {
    await cp?.close();
  });

  it('answers undecodable binary protobuf over Connect with invalid_argument (HTTP 400), logs and counts it', async () => {
    const before = await refusedTotal(cp.httpUrl, 'undecodable');
    for (const body of [TRUNCATED, NOT_UTF8]) {
      const response = await fetch(`${cp.httpUrl}/switchboard.v1.AuthService/Login`, {
        method: 'POST',
        headers: { 'content-type': 'application/proto' },
        body,
      });
      expect(response.status).toBe(400);
      const json = (await response.json()) as { code: string; message: string };
      expect(json.code).toBe('invalid_argument');
      expect(json.message).toMatch(/not a valid switchboard\.v1\.LoginRequest/);
    }
    // Logged once per address and cause per WORKER_WARNING_INTERVAL_MS; every one counted.
    expect(refusalsLogged('switchboard.v1.AuthService/Login')).toHaveLength(1);
    expect(await refusedTotal(cp.httpUrl, 'undecodable')).toBe(before + 2);
  });

  it('answers undecodable binary protobuf over gRPC and gRPC-Web with INVALID_ARGUMENT', async () => {
    const before = await refusedTotal(cp.httpUrl, 'undecodable');
    const grpc = await rawGrpc(cp.grpcUrl, '/switchboard.v1.AuthService/Login', frame(TRUNCATED));
    expect(grpc.status).toBe('3');
    expect(grpc.message).toMatch(/not a valid switchboard\.v1\.LoginRequest/);

    const web = await fetch(`${cp.httpUrl}/switchboard.v1.AuthService/Login`, {
      method: 'POST',
      headers: { 'content-type': 'application/grpc-web+proto', 'x-grpc-web': '1' },
      body: frame(NOT_UTF8),
    });
    const bytes = new Uint8Array(await web.arrayBuffer());
    expect(bytes[0]).toBe(0x80); // the trailer frame
    const trailer = new TextDecoder().decode(bytes.subarray(5));
    expect(trailer).toMatch(/grpc-status: ?3\r\n/);
    expect(await refusedTotal(cp.httpUrl, 'undecodable')).toBe(before + 2);
  });

  it('answers an undecodable message on a server stream and on the agent stream with INVALID_ARGUMENT', async () => {
    const watch = await rawGrpc(cp.grpcUrl, '/switchboard.v1.SessionService/WatchSession', frame(TRUNCATED), {
      authorization: `Bearer ${tenant.accessToken}`,
    });
    expect(watch.status).toBe('3');
    expect(refusalsLogged('switchboard.v1.SessionService/WatchSession')).not.toEqual([]);

    const agent = await rawGrpc(cp.grpcUrl, '/switchboard.v1.WorkerService/Connect', frame(TRUNCATED));
    expect(agent.status).toBe('3');
    expect(agent.message).toMatch(/not a valid switchboard\.v1\.AgentMessage/);
  });

  it('refuses invalid UTF-8 and unpaired surrogates in JSON instead of storing U+FFFD, and creates nothing', async () => {
    const before = await refusedTotal(cp.httpUrl, 'undecodable');
    const email = `utf8-${Date.now()}@example.com`;
    const json = `{"email":"${email}","password":"a-long-enough-password","displayName":"X\u00ff","tenantName":"T"}`;
    const bytes = Buffer.from(json, 'latin1'); // 0xFF alone: not UTF-8
    const invalid = await fetch(`${cp.httpUrl}/switchboard.v1.AuthService/SignUp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: bytes,
    });
    expect(invalid.status).toBe(400);
    // Says which request could not be read, not only what the UTF-8 decoder said.
    expect(await invalid.json()).toEqual({
      code: 'invalid_argument',
      message: 'the request body is not valid JSON text (invalid UTF-8)',
    });
    // The same for a streaming request's message (decoded after the interceptors).
    const envelope = Buffer.concat([Buffer.from([0, 0, 0, 0, 0]), Buffer.from('{"sessionId":"\u00ff"}', 'latin1')]);
    envelope.writeUInt32BE(envelope.length - 5, 1);
    const stream = await fetch(`${cp.httpUrl}/switchboard.v1.SessionService/WatchSession`, {
      method: 'POST',
      headers: {
        'content-type': 'application/connect+json',
        authorization: `Bearer ${tenant.accessToken}`,
      },
      body: envelope,
    });
    expect(new TextDecoder().decode(await stream.arrayBuffer())).toContain(
      'the request body is not valid JSON text (invalid UTF-8)',
    );

    const surrogate = await fetch(`${cp.httpUrl}/switchboard.v1.AuthService/SignUp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: `{"email":"${email}","password":"a-long-enough-password","displayName":"X\\ud800","tenantName":"T"}`,
    });
    expect(surrogate.status).toBe(400);
    expect((await surrogate.json()) as { message: string }).toMatchObject({
      code: 'invalid_argument',
      message: expect.stringMatching(/display_name.*invalid UTF8/) as unknown,
    });

    const db = new pg.Client({ connectionString: cp.databaseUrl });
    await db.connect();
    const { rows } = await db.query('select count(*)::int as n from app_user where email = $1', [email]);
    await db.end();
    expect(rows[0]).toEqual({ n: 0 });
    expect(await refusedTotal(cp.httpUrl, 'undecodable')).toBe(before + 2);
  });

  it('refuses enum names and fields the API does not have, naming them', async () => {
    const before = await refusedTotal(cp.httpUrl, 'undecodable');
    const sessions = await postJson(
      cp.httpUrl,
      'switchboard.v1.SessionService/ListSessions',
      { status: 'NOT_A_VALUE' },
      tenant.accessToken,
    );
    expect(sessions.status).toBe(400);
    expect(sessions.json).toMatchObject({ code: 'invalid_argument', message: expect.stringMatching(/NOT_A_VALUE/) });

    const workers = await postJson(
      cp.httpUrl,
      'switchboard.v1.AdminService/ListWorkers',
      { status: 'WORKER_STATUS_SLEEPY' },
      cp.adminToken,
    );
    expect(workers.status).toBe(400);
    expect(workers.json).toMatchObject({ code: 'invalid_argument' });

    const field = await postJson(
      cp.httpUrl,
      'switchboard.v1.AuthService/GetMe',
      { tenantIdd: 'x' },
      tenant.accessToken,
    );
    expect(field.status).toBe(400);
    expect(field.json).toMatchObject({ code: 'invalid_argument', message: expect.stringMatching(/tenantIdd/) });
    expect(await refusedTotal(cp.httpUrl, 'undecodable')).toBe(before + 3);
  });
});

/**
 * Requests Connect refuses before our interceptors still count against the
 * caller's address: garbage is no way around the per-IP limit, nor a way to
 * write one log line per request.
 */
describe('requests that cannot be decoded count against the caller’s address (real PostgreSQL and Redis)', () => {
  let cp: TestControlPlane;
  const logs = captureLogs();
  beforeAll(async () => {
    cp = await startControlPlane({
      // startControlPlane's admin login takes one: three left.
      env: { RATE_LIMIT_ANONYMOUS_PER_MINUTE: '4' },
      overrides: { logger: logs.logger },
    });
  });
  afterAll(async () => {
    await cp?.close();
  });

  const garbage = () =>
    fetch(`${cp.httpUrl}/switchboard.v1.AuthService/Login`, {
      method: 'POST',
      headers: { 'content-type': 'application/proto' },
      body: TRUNCATED,
    });
  it('answers RESOURCE_EXHAUSTED with retry-after once the address is over its anonymous limit, logs one line per cause, counts every one', async () => {
    expect((await garbage()).status).toBe(400);
    expect((await garbage()).status).toBe(400);
    // An ordinary call without credentials takes from the same allowance.
    const refresh = await postJson(cp.httpUrl, 'switchboard.v1.AuthService/Refresh', { refreshToken: 'nope' });
    expect(refresh.status).not.toBe(429);

    for (let i = 0; i < 3; i += 1) {
      const limited = await garbage();
      expect(limited.status).toBe(429);
      expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(((await limited.json()) as { code: string }).code).toBe('resource_exhausted');
    }
    const grpc = await rawGrpc(cp.grpcUrl, '/switchboard.v1.AuthService/Login', frame(TRUNCATED));
    expect(grpc.status).toBe('8');
    expect(grpc.message).toMatch(/rate limit/);
    const web = await fetch(`${cp.httpUrl}/switchboard.v1.AuthService/Login`, {
      method: 'POST',
      headers: { 'content-type': 'application/grpc-web+proto', 'x-grpc-web': '1' },
      body: frame(TRUNCATED),
    });
    const trailer = new TextDecoder().decode(new Uint8Array(await web.arrayBuffer()).subarray(5));
    expect(trailer).toMatch(/grpc-status: ?8\r\n/);
    expect(trailer).toMatch(/retry-after: ?\d+\r\n/);

    const lines = logs.lines().filter((line) => line.msg === 'rpc refused before it was decoded');
    expect(lines.map((line) => [line.cause, line.code])).toEqual([
      ['undecodable', 'INVALID_ARGUMENT'],
      ['rate_limited', 'RESOURCE_EXHAUSTED'],
    ]);
    expect(await refusedTotal(cp.httpUrl, 'undecodable')).toBe(2);
    expect(await refusedTotal(cp.httpUrl, 'rate_limited')).toBe(5);
  });
});
