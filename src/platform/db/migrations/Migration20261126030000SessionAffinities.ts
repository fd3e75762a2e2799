import { Migration } from '@mikro-orm/migrations';

/** Soft placement preferences of a session. */
export class Migration20261126030000SessionAffinities extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "session" add column "affinities" jsonb not null default '[]';`);
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "session" drop column "affinities";`);
  }
}
