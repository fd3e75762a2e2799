import { Migration } from '@mikro-orm/migrations';

/** Platform-wide settings, starting with the maintenance switch. */
export class Migration20261126000000PlatformSetting extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      `create table "platform_setting" ("key" text not null, "value" jsonb not null, "updated_at" timestamptz not null, "updated_by_user_id" uuid null, constraint "platform_setting_pkey" primary key ("key"));`,
    );
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "platform_setting";`);
  }
}
