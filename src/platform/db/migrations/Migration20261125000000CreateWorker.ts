import { Migration } from '@mikro-orm/migrations';

export class Migration20261125000000CreateWorker extends Migration {
  override async up(): Promise<void> {
    this.addSql(`
      create table "worker" (
        "id" uuid not null,
        "name" text not null,
        "status" text not null,
        "status_reason" text not null,
        "agent_version" text not null,
        "capacity" int not null,
        "supported_engines" jsonb not null,
        "labels" jsonb not null,
        "instance_id" text not null,
        "stream_id" text null,
        "replica_id" text null,
        "connected_since" timestamptz null,
        "last_heartbeat_at" timestamptz null,
        "metrics" jsonb null,
        "first_seen_at" timestamptz not null,
        "disconnected_at" timestamptz null,
        "updated_at" timestamptz not null,
        constraint "worker_pkey" primary key ("id")
      );`);
    this.addSql(`alter table "worker" add constraint "worker_name_unique" unique ("name");`);
    this.addSql(`create index "worker_status_idx" on "worker" ("status");`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "worker" cascade;`);
  }
}
