import http2 from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '@connectrpc/connect';
import { createConnectTransport, createGrpcTransport } from '@connectrpc/connect-node';
import { Health } from '../../gen/grpc/health/v1/health_pb.js';
import { SessionService } from '../../gen/switchboard/v1/session_pb.js';
import { bearer } from '../support/clients.js';
import { eventually, postJson, startControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { captureLogs } from '../support/logs.js';
import { collect } from '../support/streams.js';
import { signUp, type TestTenant } from '../support/tenants.js';

/**
 * A client that hangs up is not our failure: every streaming RPC the client
 * cancels or aborts is logged once as `Canceled`, at info, without a stack.
 */
describe('logging of streams the client ends (real PostgreSQL and Redis)', () => {
  let cp: TestControlPlane;
  let tenant: TestTenant;
  let sessionId: string;
  const logs = captureLogs();

  beforeAll(async () => {
    cp = await startControlPlane({ overrides: { logger: logs.logger } });
    tenant = await signUp(cp.httpUrl, 'hangup');
    const created = await postJson(
      cp.httpUrl,
      'switchboard.v1.SessionService/CreateSession',
      { name: 'desk', engine: 'ENGINE_SANDBOX' },
      tenant.accessToken,
    );
    sessionId = (created.json.session as { id: string }).id;
  });
  afterAll(async () => {
    await cp?.close();
  });

  /** The lines logged for `rpc` as its streams ended, once there are `count`. */
  const endLines = (rpc: string, count: number) =>
    eventually(async () => {
      const lines = logs.lines().filter((line) => line.rpc === rpc && line.code !== undefined);
      return lines.length >= count ? lines : undefined;
    });

  it('logs a health watch and WatchSession (gRPC and Connect over HTTP/1.1) the client cancelled as Canceled, at info, without a stack', async () => {
    const grpc = createGrpcTransport({ baseUrl: cp.grpcUrl });
    const withToken = { interceptors: [bearer(tenant.accessToken)] };
    const aborts = [new AbortController(), new AbortController(), new AbortController()];
    const [healthAbort, watchAbort, connectAbort] = aborts;
    const streams = [
      collect(createClient(Health, grpc).watch({ service: '' }, { signal: healthAbort?.signal })),
      collect(
        createClient(SessionService, createGrpcTransport({ baseUrl: cp.grpcUrl, ...withToken })).watchSession(
          { sessionId },
          { signal: watchAbort?.signal },
        ),
      ),
      collect(
        createClient(
          SessionService,
          createConnectTransport({ baseUrl: cp.httpUrl, httpVersion: '1.1', ...withToken }),
        ).watchSession({ sessionId }, { signal: connectAbort?.signal }),
      ),
    ];
    for (const stream of streams) await stream.frame(() => true);
    for (const abort of aborts) abort.abort();

    const health = await endLines('grpc.health.v1.Health/Watch', 1);
    const watches = await endLines('switchboard.v1.SessionService/WatchSession', 2);
    for (const line of [...health, ...watches]) {
      expect(line, JSON.stringify(line)).toMatchObject({ level: 30, code: 'CANCELED' });
      expect(line.err).toBeUndefined();
    }
    expect(watches.map((line) => line.protocol).sort()).toEqual(['connect', 'grpc']);
    expect(logs.lines().filter((line) => Number(line.level) >= 50)).toEqual([]);
  });

  it('logs a reflection stream whose client process went away (connection dropped) as Canceled, not INTERNAL', async () => {
    const rpc = 'grpc.reflection.v1.ServerReflection/ServerReflectionInfo';
    const before = logs.lines().filter((line) => line.rpc === rpc && line.code !== undefined).length;
    const session = http2.connect(cp.grpcUrl);
    const stream = session.request({
      ':method': 'POST',
      ':path': `/${rpc}`,
      'content-type': 'application/grpc+proto',
      te: 'trailers',
    });
    // One length-prefixed ServerReflectionRequest { list_services: "" } (field 7), the request left open.
    stream.write(Buffer.from([0, 0, 0, 0, 2, 0x3a, 0x00]));
    await new Promise((resolve) => stream.once('data', resolve));
    session.destroy(); // as when buf curl or grpcurl exits (Ctrl-C)

    const lines = (await endLines(rpc, before + 1)).slice(before);
    expect(lines).toEqual([expect.objectContaining({ level: 30, code: 'CANCELED' })]);
    expect(lines[0]?.err).toBeUndefined();
  });
});
