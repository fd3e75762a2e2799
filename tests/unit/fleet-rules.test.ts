import { describe, expect, it } from 'vitest';
import { isLeaseExpired, leaseKey } from '../../src/fleet/lease.js';
import {
  decodePageToken,
  decodeTimeCursor,
  encodePageToken,
  encodeTimeCursor,
  normalisePageSize,
} from '../../src/fleet/page-token.js';

describe('leases', () => {
  it('expire exactly at the TTL, by monotonic time', () => {
    expect(isLeaseExpired(1000, 500, 1499)).toBe(false);
    expect(isLeaseExpired(1000, 500, 1500)).toBe(true);
  });

  it('are keyed by worker id', () => {
    expect(leaseKey('abc')).toBe('worker:abc:lease');
  });
});

describe('page tokens and sizes', () => {
  it('round-trip the last key and stay opaque', () => {
    const token = encodePageToken('worker-42');
    expect(token).not.toContain('worker-42');
    expect(decodePageToken(token)).toBe('worker-42');
    expect(decodePageToken('')).toBeUndefined();
  });

  it.each(['garbage', encodePageToken('x').slice(0, -3) + '!!!', Buffer.from('{"b":1}').toString('base64url')])(
    'refuses a token the API did not make: %s',
    (token) => {
      expect(() => decodePageToken(token)).toThrow(/page_token/);
    },
  );

  it('defaults, caps and refuses negative page sizes', () => {
    const limits = { default: 100, max: 1000 };
    expect(normalisePageSize(0, limits)).toBe(100);
    expect(normalisePageSize(5000, limits)).toBe(1000);
    expect(normalisePageSize(7, limits)).toBe(7);
    expect(() => normalisePageSize(-1, limits)).toThrow(/page_size/);
  });
});

describe('time cursors (newest-first lists)', () => {
  it('round-trip the last event', () => {
    const last = { occurredAt: new Date('2026-11-25T10:00:00.000Z'), id: '00000000-0000-4000-8000-000000000001' };
    expect(decodeTimeCursor(encodeTimeCursor(last))).toEqual(last);
    expect(decodeTimeCursor('')).toBeUndefined();
  });

  it.each([
    '2026-01-01T00:00:00Z|not-a-uuid',
    '-200000-01-01T00:00:00Z|00000000-0000-4000-8000-000000000001',
    'yesterday|00000000-0000-4000-8000-000000000001',
  ])('refuses a forged cursor %j with INVALID_ARGUMENT', (inner) => {
    expect(() => decodeTimeCursor(encodePageToken(inner))).toThrow(/page_token/);
  });
});
