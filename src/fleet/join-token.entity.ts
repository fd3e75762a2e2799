import { EntitySchema } from '@mikro-orm/core';
import { User } from '../identity/account.entity.js';

/** Lets an agent enrol as a worker; expiring, with a use budget. Only a SHA-256 of the secret is stored. */
export class JoinToken {
  id!: string;
  secretHash!: string;
  description!: string;
  createdByUserId!: string | null;
  createdAt!: Date;
  expiresAt!: Date;
  maxUses!: number;
  uses!: number;
}

const timestamptz = { type: 'datetime', columnType: 'timestamptz' } as const;

export const JoinTokenSchema = new EntitySchema<JoinToken>({
  class: JoinToken,
  tableName: 'join_token',
  properties: {
    id: { type: 'text', primary: true },
    secretHash: { type: 'text' },
    description: { type: 'text' },
    createdByUserId: {
      kind: 'm:1',
      entity: () => User,
      mapToPk: true,
      deleteRule: 'set null',
      fieldName: 'created_by_user_id',
      nullable: true,
    },
    createdAt: { ...timestamptz },
    expiresAt: { ...timestamptz },
    maxUses: { type: 'integer' },
    uses: { type: 'integer' },
  },
});
