import { Migration } from '@mikro-orm/migrations';

/** Backoff for sessions whose attempts keep failing. */
export class Migration20261126040000SessionRetryBackoff extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      `alter table "session" add column "failed_attempts" int not null default 0, add column "place_after" timestamptz null;`,
    );
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "session" drop column "failed_attempts", drop column "place_after";`);
  }
}
