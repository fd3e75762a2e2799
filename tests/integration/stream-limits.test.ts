import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Code, createClient } from '@connectrpc/connect';
import { createConnectTransport, createGrpcTransport } from '@connectrpc/connect-node';
import { SessionService } from '../../gen/switchboard/v1/session_pb.js';
import { Health } from '../../gen/grpc/health/v1/health_pb.js';
import { ServerReflection } from '../../gen/grpc/reflection/v1/reflection_pb.js';
import { bearer } from '../support/clients.js';
import { eventually, postJson, startControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { collect } from '../support/streams.js';
import { addMember, signUp, type TestTenant } from '../support/tenants.js';

/**
 * Concurrent server streams are capped per caller and per tenant (by plan)
 * and, without credentials, per client address — across replicas, since the
 * count lives in Redis. The excess is refused with RESOURCE_EXHAUSTED; a
 * closed stream gives its slot back.
 */
describe('concurrent stream limits (two replicas, real PostgreSQL and Redis)', () => {
  let a: TestControlPlane;
  let b: TestControlPlane;
  let tenant: TestTenant;
  let sessionId: string;
  const env = {
    STREAMS_PER_CALLER_FREE: '2',
    STREAMS_PER_TENANT_FREE: '3',
    STREAMS_PER_IP_ANONYMOUS: '2',
    STREAMS_PER_IP_REFLECTION: '3',
  };

  const watchOn = (cp: TestControlPlane, token: string, protocol: 'grpc' | 'connect' = 'grpc') => {
    const abort = new AbortController();
    const transport =
      protocol === 'grpc'
        ? createGrpcTransport({ baseUrl: cp.grpcUrl, interceptors: [bearer(token)] })
        : createConnectTransport({ baseUrl: cp.httpUrl, httpVersion: '1.1', interceptors: [bearer(token)] });
    const stream = collect(
      createClient(SessionService, transport).watchSession({ sessionId }, { signal: abort.signal }),
    );
    return { stream, close: () => abort.abort() };
  };
  /** Opens a stream and waits for its first frame (open) or its end (refused). */
  const open = async (cp: TestControlPlane, token: string, protocol: 'grpc' | 'connect' = 'grpc') => {
    const watch = watchOn(cp, token, protocol);
    const first = await Promise.race([
      watch.stream.frame(() => true).then(() => undefined),
      watch.stream.ended.then((end) => end.error),
    ]);
    return { ...watch, refused: first };
  };

  beforeAll(async () => {
    a = await startControlPlane({ env });
    b = await startControlPlane({ env, replicaOf: a });
    tenant = await signUp(a.httpUrl, 'limits');
    const created = await postJson(
      a.httpUrl,
      'switchboard.v1.SessionService/CreateSession',
      { name: 'desk', engine: 'ENGINE_SANDBOX' },
      tenant.accessToken,
    );
    sessionId = (created.json.session as { id: string }).id;
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
  });

  it('caps streams per caller across replicas, and frees the slot when a stream closes', async () => {
    const first = await open(a, tenant.accessToken);
    const second = await open(b, tenant.accessToken, 'connect');
    expect(first.refused).toBeUndefined();
    expect(second.refused).toBeUndefined();

    const third = await open(b, tenant.accessToken);
    expect(third.refused?.code).toBe(Code.ResourceExhausted);
    expect(third.refused?.rawMessage).toMatch(/too many open streams for this user/);
    const overConnect = await open(a, tenant.accessToken, 'connect');
    expect(overConnect.refused?.code).toBe(Code.ResourceExhausted);

    first.close();
    const again = await eventually(async () => {
      const attempt = await open(b, tenant.accessToken);
      if (attempt.refused) return undefined;
      return attempt;
    });
    expect(again.refused).toBeUndefined();
    again.close();
    second.close();
  });

  it('caps streams per tenant, whoever of its members opens them', async () => {
    const developer = await addMember(a.httpUrl, tenant, 'DEVELOPER');
    const viewer = await addMember(a.httpUrl, tenant, 'VIEWER');
    const held = [await open(a, tenant.accessToken), await open(a, developer.token), await open(b, viewer.token)];
    expect(held.map((h) => h.refused)).toEqual([undefined, undefined, undefined]);

    const fourth = await open(b, developer.token);
    expect(fourth.refused?.code).toBe(Code.ResourceExhausted);
    expect(fourth.refused?.rawMessage).toMatch(/for this tenant/);
    // Another tenant is not affected.
    const other = await signUp(a.httpUrl, 'elsewhere');
    const created = await postJson(
      a.httpUrl,
      'switchboard.v1.SessionService/CreateSession',
      { name: 'desk', engine: 'ENGINE_SANDBOX' },
      other.accessToken,
    );
    const otherWatch = collect(
      createClient(
        SessionService,
        createGrpcTransport({ baseUrl: a.grpcUrl, interceptors: [bearer(other.accessToken)] }),
      ).watchSession({ sessionId: (created.json.session as { id: string }).id }),
    );
    await otherWatch.frame(() => true);
    for (const h of held) h.close();
  });

  it('caps anonymous streams (health watch) per client address', async () => {
    const health = createClient(Health, createGrpcTransport({ baseUrl: a.grpcUrl }));
    const aborts = [new AbortController(), new AbortController(), new AbortController()];
    const [one, two, three] = aborts.map((abort) => collect(health.watch({ service: '' }, { signal: abort.signal })));
    await one?.frame(() => true);
    await two?.frame(() => true);
    const { error } = (await three?.ended) ?? {};
    expect(error?.code).toBe(Code.ResourceExhausted);
    expect(error?.rawMessage).toMatch(/from this address/);
    for (const abort of aborts) abort.abort();
  });

  /** A reflection stream as grpcurl and buf curl hold one: a question answered, then kept open until closed. */
  const reflect = (cp: TestControlPlane) => {
    const abort = new AbortController();
    let done = () => {};
    const finished = new Promise<void>((resolve) => (done = resolve));
    async function* requests() {
      yield { messageRequest: { case: 'listServices' as const, value: '' } };
      await finished;
    }
    const client = createClient(ServerReflection, createGrpcTransport({ baseUrl: cp.grpcUrl }));
    const stream = collect(client.serverReflectionInfo(requests(), { signal: abort.signal }));
    const opened = Promise.race([
      stream.frame(() => true).then(() => undefined),
      stream.ended.then((end) => end.error),
    ]);
    return { opened, close: () => (done(), abort.abort()) };
  };

  it('gives server reflection its own cap per address, so running grpcurl / buf curl calls leave the other anonymous slots alone', async () => {
    const health = createClient(Health, createGrpcTransport({ baseUrl: a.grpcUrl }));
    const aborts = [new AbortController(), new AbortController()];
    const watches = aborts.map((abort) => collect(health.watch({ service: '' }, { signal: abort.signal })));
    for (const watch of watches) await watch.frame(() => true);
    // Both anonymous slots are taken; three reflection streams still open, on either replica.
    const reflections = [reflect(a), reflect(b), reflect(a)];
    for (const reflection of reflections) expect(await reflection.opened).toBeUndefined();

    const fourth = reflect(b);
    const refused = await fourth.opened;
    expect(refused?.code).toBe(Code.ResourceExhausted);
    expect(refused?.rawMessage).toMatch(/server reflection streams from this address \(at most 3\)/);
    fourth.close();

    // One finishing gives its slot back.
    reflections[0]?.close();
    await eventually(async () => {
      const next = reflect(a);
      const error = await next.opened;
      if (error) next.close();
      else reflections.push(next);
      return error ? undefined : true;
    });
    for (const reflection of reflections) reflection.close();
    for (const abort of aborts) abort.abort();
  });
});
