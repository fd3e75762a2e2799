import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { migrate, openDatabase, type DatabaseTarget } from '../../src/platform/db/database.js';
import { entities } from '../../src/entities.js';
import { createLogger } from '../../lib/logger.js';
import { createTestDatabase } from '../support/services.js';

const logger = createLogger({ level: 'silent', pretty: false });

describe('database migrations', () => {
  it.each(['postgresql', 'pglite'] as const)(
    'apply once, are idempotent, and leave the schema exactly as the entities describe (%s)',
    async (kind) => {
      const database = kind === 'postgresql' ? await createTestDatabase() : undefined;
      const dataDir = kind === 'pglite' ? mkdtempSync(join(tmpdir(), 'sb-mig-')) : undefined;
      const target: DatabaseTarget = database
        ? { kind: 'postgresql', url: database.url, poolMax: 2 }
        : { kind: 'pglite', dataDir: join(dataDir as string, 'db') };
      const db = await openDatabase(target, entities, logger);
      try {
        expect((await migrate(db, logger)).length).toBeGreaterThan(0);
        expect(await migrate(db, logger)).toEqual([]);
        // A migration that drifts from the entities shows up as pending DDL here.
        expect((await db.orm.schema.getUpdateSchemaSQL()).trim()).toBe('');
      } finally {
        await db.close();
        await database?.drop();
        if (dataDir) rmSync(dataDir, { recursive: true, force: true });
      }
    },
    60_000,
  );
});
