import { EntitySchema } from '@mikro-orm/core';
import type { JWK } from 'jose';

/**
 * A key that signs access tokens and worker credentials. Kept in PostgreSQL
 * so every replica signs and verifies with the same set; rotated by age.
 */
export class SigningKey {
  kid!: string;
  algorithm!: string;
  publicJwk!: JWK;
  privateJwk!: JWK;
  createdAt!: Date;
  /** No new tokens are signed with it after this. */
  signUntil!: Date;
  /** Dropped from the JWKS after this: every token it signed has expired. */
  verifyUntil!: Date;
}

const timestamptz = { type: 'datetime', columnType: 'timestamptz' } as const;

export const SigningKeySchema = new EntitySchema<SigningKey>({
  class: SigningKey,
  tableName: 'signing_key',
  properties: {
    kid: { type: 'text', primary: true },
    algorithm: { type: 'text' },
    publicJwk: { type: 'json' },
    privateJwk: { type: 'json', lazy: true },
    createdAt: { ...timestamptz },
    signUntil: { ...timestamptz },
    verifyUntil: { ...timestamptz },
  },
});
