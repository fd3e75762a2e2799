/** The server part of a WhatsApp user's id. */
const USER_SERVER = 's.whatsapp.net';
/** Country code first, no leading 0, 7 to 15 digits (E.164's maximum). */
const PHONE_DIGITS = /^[1-9]\d{6,14}$/;

/**
 * The one spelling of a chat: a phone number ("+15551234567" or
 * "15551234567") becomes WhatsApp's user id "15551234567@s.whatsapp.net",
 * the form workers report senders in, so the chat a tenant sends to and the
 * chat that person writes from are one chat (history, unread counts, the
 * governor's known contacts). Anything else is kept as given: the engine
 * validates it.
 */
export function chatId(address: string): string {
  const trimmed = address.trim();
  if (trimmed.includes('@')) return trimmed;
  const digits = trimmed.startsWith('+') ? trimmed.slice(1) : trimmed;
  return PHONE_DIGITS.test(digits) ? `${digits}@${USER_SERVER}` : trimmed;
}
