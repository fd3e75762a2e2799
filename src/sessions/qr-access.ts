import { roleAllows } from '../identity/roles.js';
import type { Principal } from '../identity/principal.js';

/**
 * Whether the caller may see a session's QR codes: a QR code links an
 * account, so only those who may manage sessions see it (GetQrCode,
 * WatchSession, the event stream's session.qr events). Decided on the
 * caller as last re-checked, so a role that loses the right stops seeing
 * them at once.
 */
export function maySeeQrCodes(principal: Principal): boolean {
  return principal.role !== null && roleAllows(principal.role, 'sessions.manage');
}
