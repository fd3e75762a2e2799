import { Migration } from '@mikro-orm/migrations';

/** Worker schedulability (cordon, drain), failure grace, and the worker event history. */
export class Migration20261125020000WorkerLifecycle extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      `create table "worker_event" ("id" uuid not null, "worker_id" uuid not null, "kind" text not null, "reason" text not null, "actor_user_id" uuid null, "occurred_at" timestamptz not null, constraint "worker_event_pkey" primary key ("id"));`,
    );
    this.addSql(`create index "worker_event_worker_time_idx" on "worker_event" ("worker_id", "occurred_at", "id");`);
    this.addSql(
      `alter table "worker_event" add constraint "worker_event_worker_id_foreign" foreign key ("worker_id") references "worker" ("id") on update cascade on delete cascade;`,
    );
    this.addSql(
      `alter table "worker" add column "schedulability" text not null default 'ACTIVE', add column "schedulability_reason" text not null default '', add column "fail_after" timestamptz null;`,
    );
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "worker_event" cascade;`);
    this.addSql(
      `alter table "worker" drop column "schedulability", drop column "schedulability_reason", drop column "fail_after";`,
    );
  }
}
