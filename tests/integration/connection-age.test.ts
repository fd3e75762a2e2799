import { describe, expect, it } from 'vitest';
import { createTestAgent } from '../support/agents.js';
import { startControlPlane } from '../support/control-plane.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// The connection age limit (streams ended at MAX_CONNECTION_AGE_MS ±10% so agents rebalance)
// is a control-plane timing rule: fleet-timing.test.ts checks it on a fake clock.
describe('long-lived agent connections', () => {
  it('accepts keepalive pings every second without GOAWAY (too_many_pings)', async () => {
    const quiet = await startControlPlane();
    const agent = createTestAgent(quiet.grpcAddress, await quiet.joinToken(1), {
      keepaliveTimeMs: 1000,
      keepaliveTimeoutMs: 1000,
    });
    let welcomes = 0;
    agent.on('welcome', () => welcomes++);
    agent.start();
    try {
      await agent.connected();
      // Real HTTP/2 PING frames on a real connection: only real time sends them.
      await sleep(3500);
      expect(welcomes).toBe(1);
      expect(agent.state).toBe('connected');
    } finally {
      await agent.stop();
      await quiet.close();
    }
  });
});
