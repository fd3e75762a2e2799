import { EntitySchema } from '@mikro-orm/core';
import type { JWK } from 'jose';

/**
 * A key that signs access tokens and worker credentials. Kept in PostgreSQL
 * so every replica signs and verifies with the same set; rotated by age. The
 * private half is stored sealed (SigningKeyVault), so a database reader
 * cannot mint tokens.
 */
export class SigningKey {
  kid!: string;
  algorithm!: string;
  publicJwk!: JWK;
  /** Id of the SIGNING_KEY_ENCRYPTION_KEYS key that sealed the private JWK. */
  privateKeyKekId!: string | null;
  privateKeyIv!: Buffer | null;
  /** The private JWK, AES-256-GCM-encrypted with the row's kid as additional data. */
  privateKeyCiphertext!: Buffer | null;
  privateKeyTag!: Buffer | null;
  /**
   * The private JWK in plaintext, as versions before encryption wrote it (and
   * still write it during a rolling upgrade). Sealed and cleared at start; a
   * later release drops the column once no such version runs.
   */
  legacyPrivateJwk!: JWK | null;
  createdAt!: Date;
  /** No new tokens are signed with it after this. */
  signUntil!: Date;
  /** Dropped from the JWKS after this: every token it signed has expired. */
  verifyUntil!: Date;
}

const timestamptz = { type: 'datetime', columnType: 'timestamptz' } as const;
// 'Buffer', not 'blob': it maps through BlobType, so rows hold Buffers on PGlite too (which
// returns bytea as Uint8Array) and a Buffer in a where clause is sent as bytea, not as a list.
const bytes = { type: 'Buffer' } as const;

export const SigningKeySchema = new EntitySchema<SigningKey>({
  class: SigningKey,
  tableName: 'signing_key',
  properties: {
    kid: { type: 'text', primary: true },
    algorithm: { type: 'text' },
    publicJwk: { type: 'json' },
    privateKeyKekId: { type: 'text', nullable: true },
    privateKeyIv: { ...bytes, nullable: true },
    privateKeyCiphertext: { ...bytes, nullable: true, lazy: true },
    privateKeyTag: { ...bytes, nullable: true },
    legacyPrivateJwk: { type: 'json', nullable: true, lazy: true, fieldName: 'private_jwk' },
    createdAt: { ...timestamptz },
    signUntil: { ...timestamptz },
    verifyUntil: { ...timestamptz },
  },
});
