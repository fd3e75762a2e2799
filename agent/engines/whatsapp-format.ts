import { createHash } from 'node:crypto';

/**
 * WhatsApp's wire formats that engines share (pure): user JIDs, message ids,
 * pairing codes and QR payloads. The sandbox produces them so that whatever
 * consumes engine events cannot tell it from the real network by shape.
 */

/** The server part of a user's JID. */
export const USER_SERVER = 's.whatsapp.net';

/** Country code first, no leading 0, 7 to 15 digits in all (E.164's maximum). */
const PHONE_DIGITS = /^[1-9]\d{6,14}$/;

/** A phone number WhatsApp could address, in the forms engines accept. */
export interface PhoneAddress {
  /** Digits only, country code first: 15551234567. */
  phoneNumber: string;
  /** 15551234567@s.whatsapp.net */
  jid: string;
}

/** Why an address was refused, for error messages; undefined when it was accepted. */
export type AddressProblem = string;

/**
 * Reads a phone number ('15551234567' or '+15551234567') or a user JID
 * ('15551234567@s.whatsapp.net'). Anything else (groups, LIDs, device JIDs,
 * spaces or dashes) is refused: callers normalise input before it gets here.
 */
export function parsePhoneAddress(address: string): PhoneAddress | AddressProblem {
  const at = address.indexOf('@');
  if (at >= 0) {
    const user = address.slice(0, at);
    const server = address.slice(at + 1);
    if (server === 'g.us') return 'group JIDs are not supported, only users';
    if (server !== USER_SERVER) return `expected a user JID <digits>@${USER_SERVER}`;
    if (!PHONE_DIGITS.test(user)) return 'the JID user part must be a phone number (7 to 15 digits, no leading 0)';
    return { phoneNumber: user, jid: address };
  }
  const digits = address.startsWith('+') ? address.slice(1) : address;
  if (!PHONE_DIGITS.test(digits)) {
    return 'expected a phone number with country code (7 to 15 digits, optional leading +, no spaces)';
  }
  return { phoneNumber: digits, jid: `${digits}@${USER_SERVER}` };
}

/** WhatsApp accepts text messages up to this many characters. */
export const MAX_TEXT_LENGTH = 65_536;

/** An id like WhatsApp Web's own: 3EB0 followed by 16 uppercase hex digits (8 random bytes). */
export function webMessageId(random8: Uint8Array): string {
  return `3EB0${hex(random8, 8)}`;
}

/**
 * WhatsApp's id for the message we know as `ourId`, derived rather than
 * random: a message dispatched again after a crash (same id of ours) gets the
 * same WhatsApp id, which is what lets the network (and the sandbox's send
 * log) recognise the repeat. `hexDigits` after the 3EB0 prefix: 16 is the
 * classic WhatsApp Web shape (the sandbox's), 18 what Baileys generates now
 * (generateMessageIDV2: '3EB0' + 18 upper-case hex of a SHA-256).
 */
export function derivedMessageId(ourId: string, hexDigits: 16 | 18): string {
  // A namespace in the hash, so the id says nothing directly about ours.
  const digest = createHash('sha256').update(`switchboard/message/${ourId}`).digest('hex');
  return `3EB0${digest.slice(0, hexDigits).toUpperCase()}`;
}

/** An id like a phone's (iOS): 3A followed by 18 uppercase hex digits (9 random bytes). */
export function phoneMessageId(random9: Uint8Array): string {
  return `3A${hex(random9, 9)}`;
}

/**
 * Pairing codes use Crockford's base-32 alphabet without 0, I, O and U (as
 * WhatsApp and Baileys do), so a code read off a screen cannot be mistyped
 * as a look-alike.
 */
export const PAIRING_CODE_ALPHABET = '123456789ABCDEFGHJKLMNPQRSTVWXYZ';

/** 8 characters from 5 random bytes (40 bits, 5 bits a character), ungrouped: 'ABCD1234'. */
export function pairingCodeFromBytes(random5: Uint8Array): string {
  if (random5.length < 5) throw new RangeError('a pairing code needs 5 random bytes');
  let bits = 0n;
  for (let i = 0; i < 5; i++) bits = (bits << 8n) | BigInt(random5[i] ?? 0);
  let code = '';
  for (let shift = 35n; shift >= 0n; shift -= 5n) code += PAIRING_CODE_ALPHABET[Number((bits >> shift) & 31n)];
  return code;
}

/** How people see a code: two groups of four, 'ABCD-1234'. */
export function formatPairingCode(code: string): string {
  const plain = normalisePairingCode(code);
  return plain.length === 8 ? `${plain.slice(0, 4)}-${plain.slice(4)}` : plain;
}

/** What a person typed, as the code compares: upper case, without the dash or spaces. */
export function normalisePairingCode(typed: string): string {
  return typed.replace(/[\s-]/g, '').toUpperCase();
}

/** What WhatsApp's QR encodes: `ref,noisePublicKeyB64,identityPublicKeyB64,advSecretB64`. */
export function qrPayload(
  ref: string,
  noisePublicKey: Uint8Array,
  identityPublicKey: Uint8Array,
  advSecret: Uint8Array,
) {
  return [ref, b64(noisePublicKey), b64(identityPublicKey), b64(advSecret)].join(',');
}

function b64(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64');
}

function hex(bytes: Uint8Array, length: number): string {
  if (bytes.length < length) throw new RangeError(`expected ${length} random bytes`);
  return Buffer.from(bytes.subarray(0, length)).toString('hex').toUpperCase();
}
