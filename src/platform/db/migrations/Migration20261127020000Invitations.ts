import { Migration } from '@mikro-orm/migrations';

/** Invitations: people join a tenant only by accepting one. */
export class Migration20261127020000Invitations extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      `create table "invitation" ("id" uuid not null, "tenant_id" uuid not null, "email" text not null, "email_normalized" text not null, "role" text not null, "token_hash" text not null, "invited_by_user_id" uuid null, "created_at" timestamptz not null, "expires_at" timestamptz not null, "accepted_at" timestamptz null, "accepted_by_user_id" uuid null, "revoked_at" timestamptz null, constraint "invitation_pkey" primary key ("id"));`,
    );
    this.addSql(`alter table "invitation" add constraint "invitation_token_hash_unique" unique ("token_hash");`);
    this.addSql(`create index "invitation_tenant_email_idx" on "invitation" ("tenant_id", "email_normalized");`);
    this.addSql(
      `alter table "invitation" add constraint "invitation_tenant_id_foreign" foreign key ("tenant_id") references "tenant" ("id") on update cascade on delete cascade;`,
    );
    this.addSql(
      `alter table "invitation" add constraint "invitation_invited_by_user_id_foreign" foreign key ("invited_by_user_id") references "app_user" ("id") on update cascade on delete set null;`,
    );
    this.addSql(
      `alter table "invitation" add constraint "invitation_accepted_by_user_id_foreign" foreign key ("accepted_by_user_id") references "app_user" ("id") on update cascade on delete set null;`,
    );
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "invitation" cascade;`);
  }
}
