import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** A high-entropy random secret, URL-safe. */
export function randomSecret(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

/** SHA-256, hex. Enough for high-entropy secrets (API keys, refresh and join tokens); passwords use argon2id. */
export function sha256Hex(value: string): string {
  return createHash('sha256').update(value).digest('hex');
}

/** Compares two hex digests in constant time. */
export function digestsEqual(a: string, b: string): boolean {
  const left = Buffer.from(a, 'hex');
  const right = Buffer.from(b, 'hex');
  return left.length === right.length && left.length > 0 && timingSafeEqual(left, right);
}

/** Lower-cases and trims an email so uniqueness and look-ups ignore case. */
export function normaliseEmail(email: string): string {
  return email.trim().toLowerCase();
}
