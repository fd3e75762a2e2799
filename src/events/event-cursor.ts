import { createHash } from 'node:crypto';
import { DomainError } from '../../lib/errors.js';

/**
 * Event cursors: opaque to clients, a position in one tenant's log. The
 * cursor names its tenant (by a short hash), so a cursor carried over from
 * another tenant's stream is refused instead of silently meaning a
 * position in this one.
 */
export function encodeEventCursor(tenantId: string, seq: bigint | string): string {
  return Buffer.from(`ev1:${tenantTag(tenantId)}:${seq}`, 'utf8').toString('base64url');
}

/** The sequence number after which to continue; undefined for an empty cursor. */
export function decodeEventCursor(tenantId: string, cursor: string, field = 'after_cursor'): bigint | undefined {
  if (cursor === '') return undefined;
  const match = /^ev1:([0-9a-f]{12}):(\d{1,19})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!match?.[1] || !match[2]) {
    throw DomainError.invalidArgument(field, 'not an event cursor returned by this API');
  }
  if (match[1] !== tenantTag(tenantId)) {
    throw DomainError.invalidArgument(field, "this cursor belongs to another tenant's event log");
  }
  return BigInt(match[2]);
}

function tenantTag(tenantId: string): string {
  return createHash('sha256').update(tenantId).digest('hex').slice(0, 12);
}
