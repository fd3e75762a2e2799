import { Migration } from '@mikro-orm/migrations';

/**
 * Signing keys' private halves are stored sealed. Expand only: the plaintext
 * column stays (nullable) so replicas of the previous version keep running
 * during a rolling upgrade; the new version seals and clears it at start.
 */
export class Migration20261127030000SigningKeyEncryption extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      `alter table "signing_key" alter column "private_jwk" drop not null, add column "private_key_kek_id" text null, add column "private_key_iv" bytea null, add column "private_key_ciphertext" bytea null, add column "private_key_tag" bytea null;`,
    );
  }

  override async down(): Promise<void> {
    // Sealed keys cannot be opened here (the key-encryption key is not): they
    // are dropped, their tokens stop verifying, and the older version makes a new key.
    this.addSql(`delete from "signing_key" where "private_jwk" is null;`);
    this.addSql(
      `alter table "signing_key" drop column "private_key_kek_id", drop column "private_key_iv", drop column "private_key_ciphertext", drop column "private_key_tag", alter column "private_jwk" set not null;`,
    );
  }
}
