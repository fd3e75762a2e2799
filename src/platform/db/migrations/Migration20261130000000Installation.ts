import { Migration } from '@mikro-orm/migrations';

/**
 * The database's own identity: one row made when the database is first
 * migrated. Files a developer setup keeps beside a database (generated keys,
 * the local agent's credential) are filed under it, so switching DATABASE_URL
 * never pairs one database's data with another's keys.
 */
export class Migration20261130000000Installation extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      `create table "installation" ("id" uuid not null default gen_random_uuid(), "created_at" timestamptz not null default now(), constraint "installation_pkey" primary key ("id"));`,
    );
    this.addSql(`insert into "installation" default values;`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "installation";`);
  }
}
