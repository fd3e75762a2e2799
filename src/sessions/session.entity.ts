import { EntitySchema } from '@mikro-orm/core';
import type { EngineKind } from '../fleet/worker.entity.js';
import type { LinkedAccount, SessionState } from './session.state.js';

/** Where a session is in its life; transitions live in session.state.ts. */
export type SessionStatus = SessionState;

/** A tenant's WhatsApp account link and where it runs. */
export class Session {
  id!: string;
  tenantId!: string;
  name!: string;
  engine!: EngineKind;
  status!: SessionStatus;
  statusReason!: string;
  /** The tenant's placement constraint, e.g. "region=eu,!spot" (parsed by the fleet's label selector). */
  labelSelector!: string;
  /** Soft placement preferences: label selector and weight (-100..100). */
  affinities!: { labelSelector: string; weight: number }[];
  /** The worker it is assigned to; null unless placed. */
  workerId!: string | null;
  /** Bumped on every assignment; the fencing token the worker presents with every event. */
  epoch!: number;
  account!: LinkedAccount | null;
  /** The latest QR code while SCAN_QR, so any replica can serve GetQrCode. */
  qrPayload!: string | null;
  qrExpiresAt!: Date | null;
  qrSequence!: number;
  /** Queue order for placement while PENDING. */
  pendingSince!: Date | null;
  /** Attempts in a row that ended without connecting (reset once WORKING or by the tenant). */
  failedAttempts!: number;
  /** Not placed before this (backoff after failed attempts); null means at once. */
  placeAfter!: Date | null;
  /** When the account was last linked (by QR or pairing code): the send governor's warm-up starts there. */
  linkedAt!: Date | null;
  /** The tenant's send governor settings; null keeps the plan's defaults. */
  sendPolicy!: Record<string, number> | null;
  createdAt!: Date;
  updatedAt!: Date;
}

export const SessionSchema = new EntitySchema<Session>({
  class: Session,
  tableName: 'session',
  properties: {
    id: { type: 'uuid', primary: true },
    tenantId: { type: 'uuid' },
    name: { type: 'text' },
    engine: { type: 'text' },
    status: { type: 'text' },
    statusReason: { type: 'text', default: '' },
    labelSelector: { type: 'text', default: '' },
    affinities: { type: 'json', defaultRaw: "'[]'" },
    workerId: { type: 'uuid', nullable: true },
    epoch: { type: 'integer', default: 0 },
    account: { type: 'json', nullable: true },
    qrPayload: { type: 'text', nullable: true },
    qrExpiresAt: { type: 'datetime', columnType: 'timestamptz', nullable: true },
    qrSequence: { type: 'integer', default: 0 },
    pendingSince: { type: 'datetime', columnType: 'timestamptz', nullable: true },
    failedAttempts: { type: 'integer', default: 0 },
    placeAfter: { type: 'datetime', columnType: 'timestamptz', nullable: true },
    linkedAt: { type: 'datetime', columnType: 'timestamptz', nullable: true },
    sendPolicy: { type: 'json', columnType: 'jsonb', nullable: true },
    createdAt: { type: 'datetime', columnType: 'timestamptz' },
    updatedAt: { type: 'datetime', columnType: 'timestamptz' },
  },
  uniques: [{ name: 'session_tenant_name_unique', properties: ['tenantId', 'name'] }],
  indexes: [
    { name: 'session_tenant_created_idx', properties: ['tenantId', 'createdAt', 'id'] },
    { name: 'session_worker_idx', properties: ['workerId'] },
    { name: 'session_pending_idx', properties: ['status', 'pendingSince'] },
  ],
});

/**
 * A session's auth state (WhatsApp credentials and signal keys) as the
 * worker last checkpointed it, encrypted with AES-256-GCM. Only the newest
 * version is kept; `keyId` names the key so keys can rotate.
 */
export class SessionAuthState {
  sessionId!: string;
  version!: number;
  keyId!: string;
  iv!: Buffer;
  ciphertext!: Buffer;
  tag!: Buffer;
  updatedAt!: Date;
}

export const SessionAuthStateSchema = new EntitySchema<SessionAuthState>({
  class: SessionAuthState,
  tableName: 'session_auth_state',
  properties: {
    sessionId: {
      kind: 'm:1',
      entity: () => Session,
      mapToPk: true,
      primary: true,
      deleteRule: 'cascade',
      fieldName: 'session_id',
    },
    version: { type: 'integer' },
    keyId: { type: 'text' },
    // 'Buffer' maps through BlobType: Buffers on PGlite too, which returns bytea as Uint8Array.
    iv: { type: 'Buffer' },
    ciphertext: { type: 'Buffer' },
    tag: { type: 'Buffer' },
    updatedAt: { type: 'datetime', columnType: 'timestamptz' },
  },
});
