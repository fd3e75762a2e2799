import { DomainError } from '../../lib/errors.js';

/**
 * Opaque cursor for keyset pagination. Callers must not build or parse it;
 * encoding the last key (rather than an offset) keeps pages stable while
 * workers come and go.
 */
export function encodePageToken(afterKey: string): string {
  return Buffer.from(JSON.stringify({ a: afterKey }), 'utf8').toString('base64url');
}

export function decodePageToken(token: string): string | undefined {
  if (token === '') return undefined;
  try {
    const decoded: unknown = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
    if (typeof decoded === 'object' && decoded !== null && 'a' in decoded && typeof decoded.a === 'string') {
      return decoded.a;
    }
  } catch {
    // fall through to the error below
  }
  throw DomainError.invalidArgument('page_token', 'not a page token returned by this API');
}

/** AIP-158 page size: 0 means the default; more than the maximum is lowered to it. */
export function normalisePageSize(requested: number, defaults: { default: number; max: number }): number {
  if (requested < 0) throw DomainError.invalidArgument('page_size', 'must not be negative');
  if (requested === 0) return defaults.default;
  return Math.min(requested, defaults.max);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Cursor for lists ordered newest first by (time, id): audit events, worker events. */
export function encodeTimeCursor(last: { occurredAt: Date; id: string }): string {
  return encodePageToken(`${last.occurredAt.toISOString()}|${last.id}`);
}

export function decodeTimeCursor(token: string): { occurredAt: Date; id: string } | undefined {
  const cursor = decodePageToken(token);
  if (cursor === undefined) return undefined;
  const [at = '', id = ''] = cursor.split('|');
  const occurredAt = new Date(at);
  const time = occurredAt.getTime();
  // Anything this API did not produce is refused here, not by the database.
  if (!/^\d{4}-\d{2}-\d{2}T/.test(at) || Number.isNaN(time) || !UUID.test(id)) {
    throw DomainError.invalidArgument('page_token', 'not a page token returned by this API');
  }
  return { occurredAt, id };
}
