import { EntitySchema } from '@mikro-orm/core';

/**
 * The database's identity: one row, made by the migration that creates the
 * table (Migration20261130000000Installation; see local-files.ts). Nothing
 * writes it afterwards. Mapped so the schema the entities describe matches
 * the migrations; read with plain SQL.
 */
export class Installation {
  id!: string;
  createdAt!: Date;
}

export const InstallationSchema = new EntitySchema<Installation>({
  class: Installation,
  tableName: 'installation',
  properties: {
    id: { type: 'uuid', primary: true, defaultRaw: 'gen_random_uuid()' },
    createdAt: { type: 'datetime', columnType: 'timestamptz', defaultRaw: 'now()' },
  },
});

/** The platform's own entities, beside the capabilities' lists in src/entities.ts. */
export const platformEntities = [InstallationSchema];
