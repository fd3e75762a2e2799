import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';

const base64Key = () => randomBytes(32).toString('base64');

describe('encryption key configuration', () => {
  const production = { NODE_ENV: 'production', SESSION_STATE_KEYS: `s1:${base64Key()}` };

  it('refuses production without SIGNING_KEY_ENCRYPTION_KEYS, saying how to make one', () => {
    expect(() => loadConfig(production)).toThrow(ConfigError);
    expect(() => loadConfig(production)).toThrow(
      /SIGNING_KEY_ENCRYPTION_KEYS: required when NODE_ENV=production \(generate a key: echo "s1:\$\(openssl rand -base64 32\)"/,
    );
  });

  it('reads SIGNING_KEY_ENCRYPTION_KEYS newest first, and leaves it to a local key outside production', () => {
    const [newest, older] = [base64Key(), base64Key()];
    const config = loadConfig({ ...production, SIGNING_KEY_ENCRYPTION_KEYS: `k2:${newest},k1:${older}` });
    expect(config.auth.signingKeyEncryptionKeys).toEqual([
      { id: 'k2', key: Buffer.from(newest, 'base64') },
      { id: 'k1', key: Buffer.from(older, 'base64') },
    ]);
    expect(loadConfig({}).auth.signingKeyEncryptionKeys).toBeUndefined();
  });

  it('refuses a signing-key encryption key that is also a session state key', () => {
    const shared = base64Key();
    expect(() =>
      loadConfig({ SESSION_STATE_KEYS: `s1:${shared}`, SIGNING_KEY_ENCRYPTION_KEYS: `k1:${shared}` }),
    ).toThrow(/SIGNING_KEY_ENCRYPTION_KEYS: must not reuse a key of SESSION_STATE_KEYS/);
  });

  it.each(['SESSION_STATE_KEYS', 'SIGNING_KEY_ENCRYPTION_KEYS'])('refuses a key id given twice in %s', (variable) => {
    expect(() => loadConfig({ [variable]: `k1:${base64Key()},k1:${base64Key()}` })).toThrow(
      new RegExp(`${variable}: key id k1 appears twice`),
    );
  });

  it.each([
    ['SESSION_STATE_KEYS', `k1:${base64Key().slice(1)}`],
    ['SIGNING_KEY_ENCRYPTION_KEYS', `k1:${base64Key()},broken`],
    ['BOOTSTRAP_JOIN_TOKEN', 'sbj_tooshort'],
  ])('never repeats the value of the secret %s in a configuration error', (variable, value) => {
    let message = '';
    try {
      loadConfig({ [variable]: value });
    } catch (error) {
      message = error instanceof Error ? error.message : '';
    }
    expect(message).toMatch(new RegExp(`^Invalid configuration: ${variable}: expected`));
    expect(message).not.toContain(value);
  });

  it('does not repeat a too-short bootstrap admin password either', () => {
    const env = { BOOTSTRAP_ADMIN_EMAIL: 'a@b.test', BOOTSTRAP_ADMIN_PASSWORD: 'hunter2' };
    expect(() => loadConfig(env)).toThrow(/BOOTSTRAP_ADMIN_PASSWORD: expected at least 12 characters$/);
  });
});
