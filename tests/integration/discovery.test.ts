import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { Health, HealthCheckResponse_ServingStatus } from '../../gen/grpc/health/v1/health_pb.js';
import { startControlPlane, type TestControlPlane } from '../support/control-plane.js';

const run = promisify(execFile);
const buf = fileURLToPath(new URL('../../node_modules/.bin/buf', import.meta.url));

/** `buf curl` speaks the same reflection protocol as grpcurl. */
async function bufCurl(args: string[]): Promise<string> {
  const { stdout } = await run(buf, ['curl', '--http2-prior-knowledge', '--protocol', 'grpc', ...args], {
    timeout: 20_000,
  });
  return stdout;
}

describe('discovery for admins: gRPC reflection, grpc.health.v1 and HTTP probes', () => {
  let cp: TestControlPlane;
  beforeAll(async () => {
    cp = await startControlPlane();
  });
  afterAll(async () => {
    await cp?.close();
  });

  it.each(['grpc-v1', 'grpc-v1alpha'])('lists every service through reflection (%s)', async (protocol) => {
    const services = (await bufCurl(['--reflect-protocol', protocol, '--list-services', cp.grpcUrl]))
      .trim()
      .split('\n');
    expect(services).toEqual(
      expect.arrayContaining([
        'switchboard.v1.AdminService',
        'switchboard.v1.WorkerService',
        'grpc.health.v1.Health',
        'grpc.reflection.v1.ServerReflection',
        'grpc.reflection.v1alpha.ServerReflection',
      ]),
    );
  });

  it('lets a reflection client call an RPC knowing only its name', async () => {
    const out = await bufCurl([
      '-H',
      `authorization: Bearer ${cp.adminToken}`,
      '-d',
      '{}',
      `${cp.grpcUrl}/switchboard.v1.AdminService/ListWorkers`,
    ]);
    expect(JSON.parse(out)).toEqual({});
    const methods = await bufCurl(['--list-methods', cp.grpcUrl]);
    expect(methods).toContain('switchboard.v1.AdminService/GetWorker');
    expect(methods).toContain('switchboard.v1.WorkerService/Connect');
  });

  it('reports SERVING through grpc.health.v1 for the server and for each service', async () => {
    const health = createClient(Health, createGrpcTransport({ baseUrl: cp.grpcUrl }));
    expect((await health.check({ service: '' })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    expect((await health.check({ service: 'switchboard.v1.AdminService' })).status).toBe(
      HealthCheckResponse_ServingStatus.SERVING,
    );
    const viaBuf = JSON.parse(await bufCurl(['-d', '{}', `${cp.grpcUrl}/grpc.health.v1.Health/Check`])) as {
      status: string;
    };
    expect(viaBuf.status).toBe('SERVING');
  });

  it('answers GET / with an index of what is served where, not a 404', async () => {
    const index = await fetch(`${cp.httpUrl}/`);
    expect(index.status).toBe(200);
    const body = (await index.json()) as { endpoints: Record<string, string>; api: Record<string, string> };
    expect(Object.keys(body.endpoints)).toEqual(['/healthz', '/readyz', '/.well-known/jwks.json', '/metrics']);
    expect(body.api.connect).toMatch(/POST/);
  });

  it('answers /healthz and /readyz on the HTTP port', async () => {
    const healthz = await fetch(`${cp.httpUrl}/healthz`);
    expect(healthz.status).toBe(200);
    const readyz = await fetch(`${cp.httpUrl}/readyz`);
    expect(readyz.status).toBe(200);
    expect(await readyz.json()).toEqual({ status: 'ok', checks: { database: 'ok', coordinationStore: 'ok' } });
    expect((await fetch(`${cp.httpUrl}/nope`)).status).toBe(404);
  });
});
