import { describe, expect, it } from 'vitest';
import { AgentConfigError, loadAgentConfig, parseLabels } from '../../agent/config.js';

describe('agent configuration', () => {
  it('reads environment variables and lets flags win', () => {
    const config = loadAgentConfig(['--name', 'flag-name', '--capacity', '7'], {
      WORKER_NAME: 'env-name',
      WORKER_CAPACITY: '3',
      WORKER_LABELS: 'region=eu, zone=eu-1a',
      CONTROL_PLANE_ADDRESS: 'cp.internal:50051',
      WORKER_ENGINES: 'sandbox,baileys',
    });
    expect(config).toMatchObject({
      workerName: 'flag-name',
      capacity: 7,
      labels: { region: 'eu', zone: 'eu-1a' },
      controlPlaneAddress: 'cp.internal:50051',
      engines: ['SANDBOX', 'BAILEYS'],
      keepaliveTimeMs: 20_000,
      keepaliveTimeoutMs: 10_000,
    });
  });

  it.each([
    [['--capacity', '0'], {}, /WORKER_CAPACITY/],
    [['--control-plane', 'http://x'], {}, /CONTROL_PLANE_ADDRESS: expected host:port/],
    [['--engines', 'telegram'], {}, /unknown engine "telegram"/],
    [['--labels', 'novalue'], {}, /expected key=value/],
    [['--bogus'], {}, /Unknown option/],
  ])('refuses %j with a message naming the setting', (argv, env, message) => {
    expect(() => loadAgentConfig(argv, env)).toThrow(AgentConfigError);
    expect(() => loadAgentConfig(argv, env)).toThrow(message);
  });

  it('treats empty variables as unset', () => {
    expect(loadAgentConfig([], { WORKER_CAPACITY: '', AGENT_LOG_FORMAT: '' })).toMatchObject({
      capacity: 100,
      logFormat: 'json',
    });
  });

  it('parses an empty label list as no labels', () => {
    expect(parseLabels('')).toEqual({});
  });
});
