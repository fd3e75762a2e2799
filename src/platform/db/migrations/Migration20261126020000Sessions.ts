import { Migration } from '@mikro-orm/migrations';

/** Sessions, their encrypted auth state, and messages. */
export class Migration20261126020000Sessions extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      `create table "session" ("id" uuid not null, "tenant_id" uuid not null, "name" text not null, "engine" text not null, "status" text not null, "status_reason" text not null default '', "label_selector" text not null default '', "worker_id" uuid null, "epoch" int not null default 0, "account" jsonb null, "qr_payload" text null, "qr_expires_at" timestamptz null, "qr_sequence" int not null default 0, "pending_since" timestamptz null, "created_at" timestamptz not null, "updated_at" timestamptz not null, constraint "session_pkey" primary key ("id"));`,
    );
    this.addSql(`create index "session_tenant_created_idx" on "session" ("tenant_id", "created_at", "id");`);
    this.addSql(`create index "session_worker_idx" on "session" ("worker_id");`);
    this.addSql(`create index "session_pending_idx" on "session" ("status", "pending_since");`);
    this.addSql(`alter table "session" add constraint "session_tenant_name_unique" unique ("tenant_id", "name");`);
    this.addSql(
      `create table "message" ("id" uuid not null, "tenant_id" uuid not null, "session_id" uuid not null, "direction" text not null, "whatsapp_message_id" text null, "chat" text not null, "text" text not null, "status" text not null, "idempotency_key" text null, "created_at" timestamptz not null, "updated_at" timestamptz not null, constraint "message_pkey" primary key ("id"));`,
    );
    this.addSql(
      `alter table "message" add constraint "message_session_idempotency_unique" unique ("session_id", "idempotency_key");`,
    );
    this.addSql(
      `alter table "message" add constraint "message_session_whatsapp_id_unique" unique ("session_id", "whatsapp_message_id", "direction");`,
    );
    this.addSql(
      `create table "session_auth_state" ("session_id" uuid not null, "version" int not null, "key_id" text not null, "iv" bytea not null, "ciphertext" bytea not null, "tag" bytea not null, "updated_at" timestamptz not null, constraint "session_auth_state_pkey" primary key ("session_id"));`,
    );
    this.addSql(
      `alter table "message" add constraint "message_session_id_foreign" foreign key ("session_id") references "session" ("id") on update cascade on delete cascade;`,
    );
    this.addSql(
      `alter table "session_auth_state" add constraint "session_auth_state_session_id_foreign" foreign key ("session_id") references "session" ("id") on update cascade on delete cascade;`,
    );
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "message";`);
    this.addSql(`drop table if exists "session_auth_state";`);
    this.addSql(`drop table if exists "session";`);
  }
}
