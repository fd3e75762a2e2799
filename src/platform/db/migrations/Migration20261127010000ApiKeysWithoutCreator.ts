import { Migration } from '@mikro-orm/migrations';

/**
 * Before only people could create API keys, a key could mint another, which
 * was stored without a creator. A key now acts with no more than its
 * creator's current role, so a key without one has no authority left:
 * revoke such keys visibly (listed as revoked, audited) instead of letting
 * them fail without explanation.
 */
export class Migration20261127010000ApiKeysWithoutCreator extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      `insert into "audit_event" ("id", "occurred_at", "action", "tenant_id", "actor_user_id", "actor_api_key_id", "target_type", "target_id", "ip", "user_agent", "details") ` +
        `select gen_random_uuid(), now(), 'api_key.revoked', "tenant_id", null, null, 'api_key', "id", '', 'migration', '{"reason":"the key has no creator (it was created by another API key)"}'::jsonb ` +
        `from "api_key" where "created_by_user_id" is null and "revoked_at" is null;`,
    );
    this.addSql(
      `update "api_key" set "revoked_at" = now() where "created_by_user_id" is null and "revoked_at" is null;`,
    );
  }

  override async down(): Promise<void> {
    // Nothing to undo: reviving keys nobody answers for would reopen the hole.
  }
}
