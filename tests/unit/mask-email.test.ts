import { describe, expect, it } from 'vitest';
import { maskEmail } from '../../src/identity/secrets.js';

describe('maskEmail (what the audit log keeps of an unknown login email)', () => {
  it.each([
    ['john.doe@example.com', 'j***@e***.com'],
    ['someone@mail.example.co.uk', 's***@m***.uk'],
    ['élodie@exemple.fr', 'é***@e***.fr'],
    // Short parts and long or odd top-level labels show nothing.
    ['jo@ex.io', '***@***.io'],
    ['admin@test.local', 'a***@t***.***'],
    ['P@ssw0rd.x1', '***@s***.***'],
    ['no-at-sign-at-all', '***'],
  ])('masks %s as %s', (email, masked) => {
    expect(maskEmail(email)).toBe(masked);
  });

  it('hides the length', () => {
    expect(maskEmail('a-very-long-local-part@example.com')).toBe(maskEmail('abc@example.com'));
  });
});
