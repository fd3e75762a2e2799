import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate, openDatabase, type Database } from '../../src/platform/db/database.js';
import { entities } from '../../src/entities.js';
import { EventLog, eventChannel, type NewEvent } from '../../src/events/event-log.js';
import { MemoryCoordinationStore } from '../../src/platform/coordination/memory-store.js';
import { createLogger } from '../../lib/logger.js';
import { systemClock } from '../../lib/clock.js';
import { createTestDatabase, type TestDatabase } from '../support/services.js';

const logger = createLogger({ level: 'silent', pretty: false });
const at = new Date('2026-11-30T10:00:00Z');

function event(tenantId: string, n: number): NewEvent {
  return { tenantId, type: 'message.received', sessionId: null, occurredAt: at, data: { n } };
}

describe.each(['postgresql', 'pglite'] as const)('event log (%s)', (kind) => {
  let db: Database;
  let database: TestDatabase | undefined;
  let dataDir: string | undefined;
  const store = new MemoryCoordinationStore(systemClock);
  const log = new EventLog(store);

  beforeAll(async () => {
    database = kind === 'postgresql' ? await createTestDatabase() : undefined;
    dataDir = kind === 'pglite' ? mkdtempSync(join(tmpdir(), 'sb-events-')) : undefined;
    db = await openDatabase(
      database
        ? { kind: 'postgresql', url: database.url, poolMax: 8 }
        : { kind: 'pglite', dataDir: join(dataDir as string, 'db') },
      entities,
      logger,
    );
    await migrate(db, logger);
  }, 60_000);

  afterAll(async () => {
    await db.close();
    await database?.drop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    await store.close();
  });

  async function rows(tenantId: string) {
    return db.orm.em
      .fork()
      .getConnection()
      .execute<{ seq: string; data: { n: number } }[]>(
        `select "seq", "data" from "event" where "tenant_id" = ? order by "seq"`,
        [tenantId],
      );
  }

  it('numbers each tenant’s events 1, 2, 3… without gaps across concurrent transactions, apart from other tenants', async () => {
    const a = randomUUID();
    const b = randomUUID();
    await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        db.orm.em.fork().transactional((tx) => log.append(tx, [event(a, i * 2), event(b, i), event(a, i * 2 + 1)], at)),
      ),
    );
    const seqA = (await rows(a)).map((r) => Number(r.seq));
    expect(seqA).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect((await rows(b)).map((r) => Number(r.seq))).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
    // Within one append, the events keep their order.
    const dataA = (await rows(a)).map((r) => r.data.n);
    for (let i = 0; i < 20; i += 2) expect(dataA[i + 1]).toBe((dataA[i] as number) + 1);
  });

  it('writes nothing, and uses no number, when the transaction that appends rolls back', async () => {
    const tenant = randomUUID();
    await db.orm.em.fork().transactional((tx) => log.append(tx, [event(tenant, 1)], at));
    await expect(
      db.orm.em.fork().transactional(async (tx) => {
        await log.append(tx, [event(tenant, 2)], at);
        throw new Error('the change the event announces failed');
      }),
    ).rejects.toThrow('failed');
    await db.orm.em.fork().transactional((tx) => log.append(tx, [event(tenant, 3)], at));
    expect((await rows(tenant)).map((r) => [Number(r.seq), r.data.n])).toEqual([
      [1, 1],
      [2, 3],
    ]);
  });

  it('announces each tenant’s last number on its channel after commit', async () => {
    const tenant = randomUUID();
    const heard: string[] = [];
    const unsubscribe = await store.subscribe(eventChannel(tenant), (message) => heard.push(message));
    const announcement = await db.orm.em
      .fork()
      .transactional((tx) => log.append(tx, [event(tenant, 1), event(tenant, 2)], at));
    await log.announce(announcement);
    await unsubscribe();
    expect(heard).toEqual(['2']);
  });
});
