import { Migration } from '@mikro-orm/migrations';

/**
 * The asynchronous send pipeline, the message history and the per-tenant
 * event log (docs/messaging.md).
 *
 * - message: a sequence number (keyset pagination that stays stable while
 *   messages arrive), timestamps of each status, the failure reason, the
 *   send governor's hold, and the dispatch bookkeeping. PENDING becomes
 *   QUEUED; a PENDING row left by the synchronous SendText of earlier
 *   versions may or may not have reached WhatsApp, so it ends FAILED with
 *   that said rather than being sent again.
 * - chat: one row per chat of a session, kept in step with its messages.
 * - event + tenant_event_counter: the ordered log; the counter row, taken in
 *   the transaction that appends, numbers a tenant's events without gaps in
 *   commit order.
 * - session: when it was linked (the governor's warm-up) and its send policy.
 */
export class Migration20261130010000MessagingPipeline extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "message" add column "seq" bigserial not null;`);
    this.addSql(`alter table "message" add column "type" text not null default 'text';`);
    this.addSql(`alter table "message" add column "sender" text not null default '';`);
    this.addSql(`alter table "message" add column "sent_at" timestamptz null;`);
    this.addSql(`alter table "message" add column "delivered_at" timestamptz null;`);
    this.addSql(`alter table "message" add column "read_at" timestamptz null;`);
    this.addSql(`alter table "message" add column "failed_at" timestamptz null;`);
    this.addSql(`alter table "message" add column "failure_reason" text not null default '';`);
    this.addSql(`alter table "message" add column "held_until" timestamptz null;`);
    this.addSql(`alter table "message" add column "held_reason" text not null default '';`);
    this.addSql(`alter table "message" add column "dispatch_epoch" int null;`);
    this.addSql(`alter table "message" add column "dispatched_at" timestamptz null;`);
    this.addSql(`alter table "message" add column "dispatch_attempts" int not null default 0;`);
    this.addSql(
      `update "message" set "status" = 'FAILED', "failed_at" = now(), "failure_reason" = 'accepted before the upgrade to the queued send pipeline; it may or may not have been sent' where "status" = 'PENDING';`,
    );
    this.addSql(`alter table "message" add constraint "message_seq_unique" unique ("seq");`);
    this.addSql(`create index "message_session_seq_idx" on "message" ("session_id", "seq");`);
    this.addSql(`create index "message_session_chat_seq_idx" on "message" ("session_id", "chat", "seq");`);
    this.addSql(`create index "message_queued_idx" on "message" ("session_id", "seq") where "status" = 'QUEUED';`);
    this.addSql(`create index "message_created_idx" on "message" ("created_at");`);

    this.addSql(
      `create table "chat" ("session_id" uuid not null, "chat" text not null, "tenant_id" uuid not null, "last_message_id" uuid null, "last_activity_at" timestamptz not null, "unread_count" int not null default 0, "created_at" timestamptz not null, constraint "chat_pkey" primary key ("session_id", "chat"));`,
    );
    this.addSql(`create index "chat_session_activity_idx" on "chat" ("session_id", "last_activity_at");`);
    this.addSql(
      `alter table "chat" add constraint "chat_session_id_foreign" foreign key ("session_id") references "session" ("id") on update cascade on delete cascade;`,
    );

    this.addSql(
      `create table "event" ("tenant_id" uuid not null, "seq" bigint not null, "type" text not null, "session_id" uuid null, "occurred_at" timestamptz not null, "data" jsonb not null, "created_at" timestamptz not null, constraint "event_pkey" primary key ("tenant_id", "seq"));`,
    );
    this.addSql(`create index "event_created_idx" on "event" ("created_at");`);
    this.addSql(
      `create table "tenant_event_counter" ("tenant_id" uuid not null, "last_seq" bigint not null default 0, constraint "tenant_event_counter_pkey" primary key ("tenant_id"));`,
    );

    this.addSql(`alter table "session" add column "linked_at" timestamptz null;`);
    this.addSql(`alter table "session" add column "send_policy" jsonb null;`);
    this.addSql(`update "session" set "linked_at" = "updated_at" where "account" is not null;`);
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "session" drop column "send_policy";`);
    this.addSql(`alter table "session" drop column "linked_at";`);
    this.addSql(`drop table if exists "tenant_event_counter";`);
    this.addSql(`drop table if exists "event";`);
    this.addSql(`drop table if exists "chat";`);
    this.addSql(`drop index "message_created_idx";`);
    this.addSql(`drop index "message_queued_idx";`);
    this.addSql(`drop index "message_session_chat_seq_idx";`);
    this.addSql(`drop index "message_session_seq_idx";`);
    this.addSql(`alter table "message" drop constraint "message_seq_unique";`);
    this.addSql(`update "message" set "status" = 'PENDING' where "status" = 'QUEUED';`);
    for (const column of [
      'dispatch_attempts',
      'dispatched_at',
      'dispatch_epoch',
      'held_reason',
      'held_until',
      'failure_reason',
      'failed_at',
      'read_at',
      'delivered_at',
      'sent_at',
      'sender',
      'type',
      'seq',
    ]) {
      this.addSql(`alter table "message" drop column "${column}";`);
    }
  }
}
