import { Migration } from '@mikro-orm/migrations';

/** Tenants, users, memberships, sign-in sessions, API keys, join tokens, signing keys and the audit log. */
export class Migration20261125010000Identity extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      `create table "audit_event" ("id" uuid not null, "occurred_at" timestamptz not null, "action" text not null, "tenant_id" uuid null, "actor_user_id" uuid null, "actor_api_key_id" text null, "target_type" text not null, "target_id" text not null, "ip" text not null, "user_agent" text not null, "details" jsonb not null, constraint "audit_event_pkey" primary key ("id"));`,
    );
    this.addSql(`create index "audit_event_tenant_time_idx" on "audit_event" ("tenant_id", "occurred_at", "id");`);
    this.addSql(`create index "audit_event_time_idx" on "audit_event" ("occurred_at", "id");`);
    this.addSql(
      `create table "signing_key" ("kid" text not null, "algorithm" text not null, "public_jwk" jsonb not null, "private_jwk" jsonb not null, "created_at" timestamptz not null, "sign_until" timestamptz not null, "verify_until" timestamptz not null, constraint "signing_key_pkey" primary key ("kid"));`,
    );
    this.addSql(
      `create table "tenant" ("id" uuid not null, "name" text not null, "plan" text not null, "created_at" timestamptz not null, constraint "tenant_pkey" primary key ("id"));`,
    );
    this.addSql(
      `create table "app_user" ("id" uuid not null, "email" text not null, "email_normalized" text not null, "display_name" text not null, "password_hash" text not null, "status" text not null, "platform_admin" boolean not null, "created_at" timestamptz not null, "password_changed_at" timestamptz not null, constraint "app_user_pkey" primary key ("id"));`,
    );
    this.addSql(
      `alter table "app_user" add constraint "app_user_email_normalized_unique" unique ("email_normalized");`,
    );
    this.addSql(
      `create table "membership" ("tenant_id" uuid not null, "user_id" uuid not null, "role" text not null, "created_at" timestamptz not null, constraint "membership_pkey" primary key ("tenant_id", "user_id"));`,
    );
    this.addSql(`create index "membership_user_idx" on "membership" ("user_id");`);
    this.addSql(
      `create table "join_token" ("id" text not null, "secret_hash" text not null, "description" text not null, "created_by_user_id" uuid null, "created_at" timestamptz not null, "expires_at" timestamptz not null, "max_uses" int not null, "uses" int not null, constraint "join_token_pkey" primary key ("id"));`,
    );
    this.addSql(
      `create table "auth_session" ("id" uuid not null, "user_id" uuid not null, "tenant_id" uuid null, "created_at" timestamptz not null, "revoked_at" timestamptz null, "revoked_reason" text null, "ip" text not null, "user_agent" text not null, constraint "auth_session_pkey" primary key ("id"));`,
    );
    this.addSql(`create index "auth_session_user_idx" on "auth_session" ("user_id");`);
    this.addSql(
      `create table "refresh_token" ("id" uuid not null, "token_hash" text not null, "session_id" uuid not null, "expires_at" timestamptz not null, "created_at" timestamptz not null, "used_at" timestamptz null, constraint "refresh_token_pkey" primary key ("id"));`,
    );
    this.addSql(`alter table "refresh_token" add constraint "refresh_token_hash_unique" unique ("token_hash");`);
    this.addSql(`create index "refresh_token_session_idx" on "refresh_token" ("session_id");`);
    this.addSql(
      `create table "api_key" ("id" text not null, "tenant_id" uuid not null, "name" text not null, "role" text not null, "secret_hash" text not null, "created_by_user_id" uuid null, "created_at" timestamptz not null, "expires_at" timestamptz null, "revoked_at" timestamptz null, "last_used_at" timestamptz null, constraint "api_key_pkey" primary key ("id"));`,
    );
    this.addSql(`create index "api_key_tenant_idx" on "api_key" ("tenant_id", "created_at");`);
    this.addSql(
      `alter table "membership" add constraint "membership_tenant_id_foreign" foreign key ("tenant_id") references "tenant" ("id") on update cascade on delete cascade;`,
    );
    this.addSql(
      `alter table "membership" add constraint "membership_user_id_foreign" foreign key ("user_id") references "app_user" ("id") on update cascade on delete cascade;`,
    );
    this.addSql(
      `alter table "join_token" add constraint "join_token_created_by_user_id_foreign" foreign key ("created_by_user_id") references "app_user" ("id") on update cascade on delete set null;`,
    );
    this.addSql(
      `alter table "auth_session" add constraint "auth_session_user_id_foreign" foreign key ("user_id") references "app_user" ("id") on update cascade on delete cascade;`,
    );
    this.addSql(
      `alter table "auth_session" add constraint "auth_session_tenant_id_foreign" foreign key ("tenant_id") references "tenant" ("id") on update cascade on delete cascade;`,
    );
    this.addSql(
      `alter table "refresh_token" add constraint "refresh_token_session_id_foreign" foreign key ("session_id") references "auth_session" ("id") on update cascade on delete cascade;`,
    );
    this.addSql(
      `alter table "api_key" add constraint "api_key_tenant_id_foreign" foreign key ("tenant_id") references "tenant" ("id") on update cascade on delete cascade;`,
    );
    this.addSql(
      `alter table "api_key" add constraint "api_key_created_by_user_id_foreign" foreign key ("created_by_user_id") references "app_user" ("id") on update cascade on delete set null;`,
    );
    this.addSql(`alter table "worker" add column "credential_generation" int not null default 0;`);
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "worker" drop column "credential_generation";`);
    this.addSql(
      `drop table if exists "api_key", "refresh_token", "auth_session", "join_token", "membership", "app_user", "tenant", "signing_key", "audit_event" cascade;`,
    );
  }
}
