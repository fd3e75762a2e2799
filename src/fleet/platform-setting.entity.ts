import { EntitySchema } from '@mikro-orm/core';

/** A platform-wide setting (e.g. the maintenance switch), one row per key, shared by every replica. */
export class PlatformSetting {
  key!: string;
  value!: Record<string, unknown>;
  updatedAt!: Date;
  updatedByUserId!: string | null;
}

export const PlatformSettingSchema = new EntitySchema<PlatformSetting>({
  class: PlatformSetting,
  tableName: 'platform_setting',
  properties: {
    key: { type: 'text', primary: true },
    value: { type: 'json' },
    updatedAt: { type: 'datetime', columnType: 'timestamptz' },
    updatedByUserId: { type: 'uuid', nullable: true },
  },
});
