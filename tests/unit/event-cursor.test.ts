import { describe, expect, it } from 'vitest';
import { decodeEventCursor, encodeEventCursor } from '../../src/events/event-cursor.js';
import { DomainError } from '../../lib/errors.js';

const tenant = '6f1c1d8e-0000-4000-8000-000000000001';
const other = '6f1c1d8e-0000-4000-8000-000000000002';

const refusal = (fn: () => unknown) => {
  try {
    fn();
  } catch (error) {
    return error instanceof DomainError ? `${error.code}: ${error.message}` : 'other';
  }
  return 'accepted';
};

describe('event cursors', () => {
  it("round-trip a position in the tenant's log, up to the largest bigint", () => {
    for (const seq of [1n, 42n, 9_223_372_036_854_775_807n]) {
      expect(decodeEventCursor(tenant, encodeEventCursor(tenant, seq))).toBe(seq);
    }
    expect(decodeEventCursor(tenant, '')).toBeUndefined();
  });

  it("refuse another tenant's cursor and anything this API did not issue as INVALID_ARGUMENT", () => {
    expect(refusal(() => decodeEventCursor(other, encodeEventCursor(tenant, 5n)))).toMatch(
      /^INVALID_ARGUMENT: .*another tenant/,
    );
    for (const garbage of ['x', 'bm90LWEtY3Vyc29y', Buffer.from('ev1:zz:1').toString('base64url'), '%%%']) {
      expect(refusal(() => decodeEventCursor(tenant, garbage))).toMatch(/^INVALID_ARGUMENT/);
    }
  });
});
