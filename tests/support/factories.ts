import { randomUUID } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/postgresql';
import { Worker } from '../../src/fleet/worker.entity.js';
import { Tenant } from '../../src/identity/account.entity.js';
import type { TenantPlan } from '../../src/identity/identity.types.js';
import type { Principal, RequestOrigin } from '../../src/identity/principal.js';

/** Where factory-made requests say they come from. */
export const TEST_ORIGIN: RequestOrigin = { ip: '127.0.0.1', userAgent: 'factory' };

/** A tenant row and its owner as a caller, for service-level tests that need no sign-up. */
export async function createTenant(
  em: EntityManager,
  plan: TenantPlan = 'free',
): Promise<{ tenantId: string; owner: Principal }> {
  const tenantId = randomUUID();
  em.create(Tenant, { id: tenantId, name: `tenant-${tenantId.slice(0, 8)}`, plan, createdAt: new Date() });
  await em.flush();
  return {
    tenantId,
    owner: {
      kind: 'user',
      userId: randomUUID(),
      tenantId,
      role: 'OWNER',
      plan,
      platformAdmin: false,
      sessionId: randomUUID(),
    },
  };
}

/**
 * A worker recorded ONLINE on a replica that is gone: its stream and its
 * lease went with that replica, and only the sweeper can notice.
 */
export async function createStrandedWorker(
  em: EntityManager,
  input: { name: string; replicaId: string; connectedSince: Date },
): Promise<Worker> {
  const worker = em.create(Worker, {
    id: randomUUID(),
    name: input.name,
    status: 'ONLINE',
    statusReason: 'connected',
    agentVersion: 'factory-1',
    capacity: 10,
    supportedEngines: ['SANDBOX'],
    labels: { zone: 'gone' },
    instanceId: randomUUID(),
    streamId: randomUUID(),
    replicaId: input.replicaId,
    connectedSince: input.connectedSince,
    lastHeartbeatAt: input.connectedSince,
    metrics: null,
    firstSeenAt: input.connectedSince,
    disconnectedAt: null,
    updatedAt: input.connectedSince,
    credentialGeneration: 1,
    schedulability: 'ACTIVE',
    schedulabilityReason: '',
    failAfter: null,
  });
  await em.flush();
  return worker;
}
