import { describe, expect, it, vi } from 'vitest';
import { Code, ConnectError, createClient, createRouterTransport } from '@connectrpc/connect';
import { Health, HealthCheckResponse_ServingStatus } from '../../gen/grpc/health/v1/health_pb.js';
import { registerHealth } from '../../src/transport/health.handler.js';
import { ServiceHealth } from '../../src/transport/service-health.js';
import type { ServiceHealthListener, ServingStatus } from '../../src/transport/service-health.js';

const ADMIN = 'switchboard.v1.AdminService';
const WORKER = 'switchboard.v1.WorkerService';

/** Counts live subscriptions, so tests can see that a cancelled Watch lets go. */
class CountingHealth extends ServiceHealth {
  subscriptions = 0;

  override subscribe(listener: ServiceHealthListener): () => void {
    const unsubscribe = super.subscribe(listener);
    this.subscriptions += 1;
    return () => {
      this.subscriptions -= 1;
      unsubscribe();
    };
  }
}

function setup() {
  const health = new CountingHealth([ADMIN, WORKER]);
  const transport = createRouterTransport((router) => {
    registerHealth(router, health);
  });
  return { health, client: createClient(Health, transport) };
}

describe('ServiceHealth', () => {
  it('knows the server and the listed services, all NOT_SERVING until told otherwise', () => {
    const health = new ServiceHealth([ADMIN]);
    expect(health.get('')).toBe('NOT_SERVING');
    expect(health.get(ADMIN)).toBe('NOT_SERVING');
    expect(health.get(WORKER)).toBeUndefined();
  });

  it('notifies real changes only, until unsubscribed', () => {
    const health = new ServiceHealth([ADMIN]);
    const seen: [string, ServingStatus][] = [];
    const unsubscribe = health.subscribe((service, status) => seen.push([service, status]));

    health.set(ADMIN, 'SERVING');
    health.set(ADMIN, 'SERVING');
    health.setAll('SERVING');
    unsubscribe();
    health.set(ADMIN, 'NOT_SERVING');

    expect(seen).toEqual([
      [ADMIN, 'SERVING'],
      ['', 'SERVING'],
    ]);
    expect(health.get(ADMIN)).toBe('NOT_SERVING');
  });

  it('learns a service that is set without being declared', () => {
    const health = new ServiceHealth([]);
    health.set(WORKER, 'SERVING');
    expect(health.get(WORKER)).toBe('SERVING');
    expect([...health.list().keys()]).toEqual(['', WORKER]);
  });

  it('keeps two subscriptions of the same function apart', () => {
    const health = new ServiceHealth([ADMIN]);
    let calls = 0;
    const listener = () => {
      calls += 1;
    };
    const first = health.subscribe(listener);
    health.subscribe(listener);
    first();
    health.set(ADMIN, 'SERVING');
    expect(calls).toBe(1);
  });
});

describe('grpc.health.v1.Health', () => {
  it('checks the server and each service', async () => {
    const { health, client } = setup();
    health.setAll('SERVING');
    health.set(WORKER, 'NOT_SERVING');

    expect((await client.check({ service: '' })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    expect((await client.check({ service: ADMIN })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    expect((await client.check({ service: WORKER })).status).toBe(HealthCheckResponse_ServingStatus.NOT_SERVING);
  });

  it('answers NOT_FOUND for a service it does not know', async () => {
    const { client } = setup();
    const failure = await client.check({ service: 'switchboard.v1.Nope' }).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(ConnectError);
    expect((failure as ConnectError).code).toBe(Code.NotFound);
  });

  it('lists every known service with its status', async () => {
    const { health, client } = setup();
    health.set(ADMIN, 'SERVING');
    const { statuses } = await client.list({});
    expect(Object.fromEntries(Object.entries(statuses).map(([name, r]) => [name, r.status]))).toEqual({
      '': HealthCheckResponse_ServingStatus.NOT_SERVING,
      [ADMIN]: HealthCheckResponse_ServingStatus.SERVING,
      [WORKER]: HealthCheckResponse_ServingStatus.NOT_SERVING,
    });
  });

  it('watches: sends the current status, then each change, and lets go when cancelled', async () => {
    const { health, client } = setup();
    const abort = new AbortController();
    const stream = client.watch({ service: ADMIN }, { signal: abort.signal })[Symbol.asyncIterator]();

    expect((await stream.next()).value?.status).toBe(HealthCheckResponse_ServingStatus.NOT_SERVING);
    health.set(ADMIN, 'SERVING');
    expect((await stream.next()).value?.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    // A change to another service is not sent on this stream.
    health.set(WORKER, 'SERVING');
    health.setAll('NOT_SERVING');
    expect((await stream.next()).value?.status).toBe(HealthCheckResponse_ServingStatus.NOT_SERVING);
    expect(health.subscriptions).toBe(1);

    abort.abort();
    await expect(stream.next()).rejects.toMatchObject({ code: Code.Canceled });
    await vi.waitFor(() => expect(health.subscriptions).toBe(0));
  });

  it('watches an unknown service: SERVICE_UNKNOWN without ending, then its status once it is set', async () => {
    const { health, client } = setup();
    const abort = new AbortController();
    const stream = client.watch({ service: 'switchboard.v1.Later' }, { signal: abort.signal })[Symbol.asyncIterator]();

    expect((await stream.next()).value?.status).toBe(HealthCheckResponse_ServingStatus.SERVICE_UNKNOWN);
    health.set('switchboard.v1.Later', 'SERVING');
    const next = await stream.next();
    expect(next.done).toBe(false);
    expect(next.value?.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    abort.abort();
    // The in-memory transport only runs the handler when the client pulls.
    await expect(stream.next()).rejects.toMatchObject({ code: Code.Canceled });
    await vi.waitFor(() => expect(health.subscriptions).toBe(0));
  });
});
