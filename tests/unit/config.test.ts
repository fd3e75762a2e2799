import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';

describe('control-plane configuration', () => {
  it('applies production defaults when nothing is set', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      dev: false,
      host: '0.0.0.0',
      httpPort: 8080,
      grpcPort: 50051,
      databaseUrl: undefined,
      redisUrl: undefined,
      redisKeyPrefix: 'switchboard:',
      heartbeatIntervalMs: 2000,
      leaseTtlMs: 10000,
      logFormat: 'json',
    });
    expect(config.replicaId).toMatch(/.+-[0-9a-f]{6}$/);
  });

  it('keeps the developer setup on loopback with readable logs', () => {
    const config = loadConfig({}, { dev: true });
    expect(config.host).toBe('127.0.0.1');
    expect(config.logFormat).toBe('pretty');
  });

  it('creates sessions on the sandbox in the developer setup and on Baileys otherwise, unless DEFAULT_ENGINE says', () => {
    expect(loadConfig({}, { dev: true }).defaultEngine).toBe('SANDBOX');
    expect(loadConfig({}).defaultEngine).toBe('BAILEYS');
    expect(loadConfig({ DEFAULT_ENGINE: 'SANDBOX' }).defaultEngine).toBe('SANDBOX');
    expect(() => loadConfig({ DEFAULT_ENGINE: 'WHATSAPP' })).toThrow(/DEFAULT_ENGINE/);
  });

  it('treats an empty variable as unset, so FOO= in a .env file means the default', () => {
    expect(loadConfig({ DATABASE_URL: '', REDIS_URL: ' ', HOST: '', LOG_FORMAT: '', HTTP_PORT: '' })).toMatchObject({
      databaseUrl: undefined,
      redisUrl: undefined,
      host: '0.0.0.0',
      logFormat: 'json',
      httpPort: 8080,
    });
  });

  it('accepts real server URLs and numbers given as strings', () => {
    const config = loadConfig({
      DATABASE_URL: 'postgresql://u:p@db:5432/sb',
      REDIS_URL: 'rediss://cache:6380',
      HTTP_PORT: '9000',
      LEASE_TTL_MS: '4000',
      HEARTBEAT_INTERVAL_MS: '1000',
    });
    expect(config).toMatchObject({ httpPort: 9000, leaseTtlMs: 4000, databaseUrl: 'postgresql://u:p@db:5432/sb' });
  });

  it.each([
    ['HTTP_PORT', 'abc'],
    ['GRPC_PORT', '70000'],
    ['DATABASE_URL', 'mysql://db/x'],
    ['REDIS_URL', 'http://cache'],
    ['LOG_LEVEL', 'loud'],
    ['HEARTBEAT_INTERVAL_MS', '10'],
  ])('names the bad variable %s=%s', (variable, value) => {
    expect(() => loadConfig({ [variable]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [variable]: value })).toThrow(new RegExp(`${variable}: .*\\(got "${value}"\\)`));
  });

  it('refuses a lease shorter than two heartbeats', () => {
    expect(() => loadConfig({ HEARTBEAT_INTERVAL_MS: '2000', LEASE_TTL_MS: '3000' })).toThrow(
      /LEASE_TTL_MS: must be at least twice HEARTBEAT_INTERVAL_MS/,
    );
  });

  it('compiles the login throttle, and refuses a progressive delay capped below its first step', () => {
    expect(loadConfig({}).auth.login).toEqual({
      maxFailures: 5,
      maxFailuresPerIp: 50,
      windowMs: 900_000,
      lockoutMs: 900_000,
      delayAfterFailures: 3,
      delayBaseMs: 1000,
      delayMaxMs: 60_000,
    });
    expect(() => loadConfig({ LOGIN_DELAY_BASE_MS: '5000', LOGIN_DELAY_MAX_MS: '4000' })).toThrow(
      /LOGIN_DELAY_MAX_MS: must be at least LOGIN_DELAY_BASE_MS/,
    );
  });

  it('reports every bad variable at once', () => {
    expect(() => loadConfig({ HTTP_PORT: 'x', GRPC_PORT: 'y' })).toThrow(/HTTP_PORT.*; GRPC_PORT/);
  });
});
