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

/**
 * Enough of an email to recognise it in the audit log (`j***@e***.com`), too
 * little to recover it: what someone types into the email box may be their
 * password. Keeps the first character of the name and of the domain (of
 * parts of three or more) and a top-level domain of two or three letters;
 * lengths are hidden.
 */
export function maskEmail(email: string): string {
  const at = email.lastIndexOf('@');
  if (at < 0) return '***';
  const name = email.slice(0, at);
  const domain = email.slice(at + 1);
  const dot = domain.lastIndexOf('.');
  const host = dot < 0 ? domain : domain.slice(0, dot);
  const top = dot < 0 ? '' : domain.slice(dot + 1);
  // A long or odd top-level label may be part of a password, not a domain.
  const shownTop = /^[a-z]{2,3}$/i.test(top) ? top : '***';
  return `${maskPart(name)}@${maskPart(host)}${dot < 0 ? '' : `.${shownTop}`}`;
}

function maskPart(part: string): string {
  const characters = [...part];
  return `${characters.length >= 3 ? characters[0] : ''}***`;
}
