import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config.js';
import { postJson } from '../support/control-plane.js';
import type { FakeAgent } from '../support/fake-agent.js';
import { FleetHarness } from '../support/fleet-harness.js';

/**
 * The mass-failure guard on a fake clock: more than 30% of the fleet (at
 * least two workers) failing within one window (a lease) holds automatic
 * reassignment until the workers come back or an operator releases it.
 * Production timings otherwise; the admin API is the replica's own, over HTTP.
 */
describe('the mass-failure guard', () => {
  let harness: FleetHarness;
  let config: Config;
  let token: string;
  const admin = (method: string, body: unknown) =>
    postJson(harness.replica.httpUrl, `switchboard.v1.AdminService/${method}`, body, token);
  const hold = async () => {
    const { json } = await admin('GetFleetSummary', {});
    return (json.reassignmentHold ?? {}) as { active?: boolean; reason?: string; failedWorkers?: number };
  };
  /** The agents' connections break; returns once their workers are FAILED (the grace has run out). */
  const fail = async (victims: FakeAgent[]) => {
    for (const victim of victims) await victim.drop();
    await harness.advance(config.failureGraceMs + 5);
    for (const victim of victims) expect((await harness.worker(victim.workerId)).status).toBe('FAILED');
  };

  beforeAll(async () => {
    harness = await FleetHarness.create({ env: { MASS_FAILURE_SHARE: '0.3', MASS_FAILURE_MIN_WORKERS: '2' } });
    config = harness.replica.app.config;
    token = await harness.adminToken();
    // Past the sweeper's first full lease: it judges the fleet from here on.
    await harness.advance(config.leaseTtlMs + config.sweepIntervalMs);
  });
  afterAll(async () => {
    await harness?.close();
  });

  it('does not hold reassignment for failures further apart than the window', async () => {
    const agents = [];
    for (const i of [0, 1, 2, 3]) agents.push(await harness.replica.connect(`apart-${i}`));
    const [first, second] = agents as [FakeAgent, FakeAgent];
    await fail([first]);
    await harness.advance(config.leaseTtlMs + config.sweepIntervalMs);
    await fail([second]);
    // Two of four failed, but never two within one window.
    await harness.advance(config.leaseTtlMs);
    expect((await hold()).active ?? false).toBe(false);
    for (const agent of agents.slice(2)) await agent.close();
    await harness.settle();
  });

  it('holds reassignment when a large share fails at once, clears when they return, and lets an operator release it', async () => {
    const agents: FakeAgent[] = [];
    for (const i of [0, 1, 2, 3]) agents.push(await harness.replica.connect(`mass-${i}`));
    expect((await hold()).active ?? false).toBe(false);

    // Two of four (50% > 30%) fail within one lease: held at the next sweep.
    await fail(agents.slice(0, 2));
    const failedAt = harness.nowMs;
    await harness.advance(config.sweepIntervalMs);
    const tripped = await hold();
    expect(tripped.active).toBe(true);
    expect(tripped.failedWorkers).toBe(2);
    expect(tripped.reason).toContain('2 of 4 workers failed');

    // They come back: the situation clears by itself once their failures have left the window.
    for (const i of [0, 1]) agents[i] = await harness.replica.connect((agents[i] as FakeAgent).identity);
    await harness.advanceTo(failedAt + config.leaseTtlMs - 1);
    expect((await hold()).active).toBe(true);
    await harness.advanceTo(failedAt + config.leaseTtlMs + config.sweepIntervalMs);
    expect((await hold()).active ?? false).toBe(false);

    // They fail again and stay failed: only an operator can release the hold.
    await fail(agents.slice(0, 2));
    await harness.advance(config.sweepIntervalMs);
    expect((await hold()).active).toBe(true);
    await harness.advance(config.leaseTtlMs + config.sweepIntervalMs); // more than a window: still held
    expect((await hold()).active).toBe(true);
    const released = await admin('ReleaseReassignmentHold', { reason: 'rack lost power; confirmed' });
    expect(released.status).toBe(200);
    expect((released.json.reassignmentHold as { active?: boolean }).active ?? false).toBe(false);
    expect((await hold()).active ?? false).toBe(false);
    const again = await admin('ReleaseReassignmentHold', { reason: 'twice' });
    expect(again.json.code).toBe('failed_precondition');
    // Released: the failures before the release do not trip it again.
    await harness.advance(config.leaseTtlMs);
    expect((await hold()).active ?? false).toBe(false);

    const { json: audit } = await postJson(
      harness.replica.httpUrl,
      'switchboard.v1.AuditService/ListAuditEvents',
      { actionPrefix: 'fleet.reassignment_hold' },
      token,
    );
    expect((audit.events as { action: string }[]).map((e) => e.action)).toEqual(['fleet.reassignment_hold_released']);
    for (const agent of agents.slice(2)) await agent.close();
  });
});
