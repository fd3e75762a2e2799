import { timestampDate } from '@bufbuild/protobuf/wkt';
import { status } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import type { Agent, AgentOptions } from '../../agent/agent.js';
import type { Engine as EngineImpl } from '../../agent/engines/engine.js';
import { createSandboxEngine } from '../../agent/engines/sandbox.engine.js';
import type { EngineFactory } from '../../agent/sessions/engines.js';
import { Engine } from '../../gen/switchboard/v1/fleet_pb.js';
import type { Random } from '../../lib/random.js';
import { ManualScheduler } from '../../lib/timers.js';
import { createTestAgent } from '../support/agents.js';
import { FakeControlPlane, WORKER_ID, type FakeStream } from '../support/fake-control-plane.js';
import { advance, settle } from '../support/time.js';

// The agent's timing rules on a fake clock over an in-memory stream: every
// figure below is exact, and a test takes milliseconds of real time.

const SESSION = '3b241101-e2bb-4255-8caf-4136c566a962';
/** Where ManualScheduler's wall clock starts. */
const START = new Date('2026-01-01T00:00:00Z').getTime();

/** Sandbox sessions that take `ms` on the agent's scheduler to stop, as a real engine takes a while. */
function slowStopping(ms: number): EngineFactory {
  return (_kind, time): EngineImpl => {
    const sandbox = createSandboxEngine(time);
    return {
      kind: sandbox.kind,
      openSession(input) {
        const session = sandbox.openSession(input);
        const stop = async () => {
          await new Promise<void>((resolve) => time.scheduler.schedule(ms, resolve));
          await session.stop();
        };
        return {
          start: () => session.start(),
          stop,
          logout: () => session.logout(),
          sendText: (to, text) => session.sendText(to, text),
          requestPairingCode: (phone) => session.requestPairingCode(phone),
        };
      },
    };
  };
}

const running: Agent[] = [];
afterEach(async () => {
  for (const agent of running.splice(0)) await agent.stop();
});

function harness(options: { random?: Random; overrides?: Partial<AgentOptions> } = {}) {
  const time = new ManualScheduler();
  const cp = new FakeControlPlane(time);
  const agent = createTestAgent(
    'cp-a:50051',
    'join-token',
    {
      backoff: { initialMs: 100, maxMs: 1000, multiplier: 2 },
      welcomeTimeoutMs: 5_000,
      drainTimeoutMs: 5_000,
      ...options.overrides,
    },
    { clock: time, scheduler: time, random: options.random ?? (() => 0.5), connect: cp.connect },
  );
  running.push(agent);
  agent.start();
  return {
    agent,
    time,
    cp,
    advance: (ms: number) => advance(time, ms),
    settle: () => settle(time),
    /** Lets the agent open its first stream and welcomes it with these timings. */
    async connect(timings: { heartbeatIntervalMs: number; leaseTtlMs: number }): Promise<FakeStream> {
      await settle(time);
      const stream = cp.latest;
      await stream.nextOf('hello');
      stream.welcome(timings);
      await settle(time);
      expect(agent.state).toBe('connected');
      return stream;
    },
    /** Has the agent run one sandbox session, as the control plane places one. */
    async assign(stream: FakeStream): Promise<void> {
      stream.send({ case: 'assignSession', value: { sessionId: SESSION, epoch: 1, engine: Engine.SANDBOX } });
      expect(await stream.nextOf('commandAck')).toMatchObject({ accepted: true });
      expect(agent.sessions.count).toBe(1);
    },
  };
}

describe('agent timing on a fake clock', () => {
  it('heartbeats at the interval the Welcome names, from the moment it arrives, stamped by the clock', async () => {
    const h = harness();
    await h.settle();
    const stream = h.cp.latest;
    expect(await stream.nextOf('hello')).toMatchObject({ credential: { case: 'joinToken', value: 'join-token' } });
    await h.advance(700);
    expect(stream.sentOf('heartbeat')).toEqual([]);

    stream.autoAck = true;
    stream.welcome({ heartbeatIntervalMs: 1_500, leaseTtlMs: 10_000 });
    await h.advance(6_000);

    const beats = stream.sentOf('heartbeat');
    expect(beats.map((beat) => beat.at)).toEqual([700, 2_200, 3_700, 5_200, 6_700]);
    expect(beats.map((beat) => beat.value.sequence)).toEqual([1n, 2n, 3n, 4n, 5n]);
    expect(beats.map((beat) => timestampDate(beat.value.sentAt!).getTime() - START)).toEqual([
      700, 2_200, 3_700, 5_200, 6_700,
    ]);
    expect(h.agent.workerId).toBe(WORKER_ID);

    // Acknowledged heartbeats keep the stream for many leases.
    await h.advance(60_000);
    expect(stream.sentOf('heartbeat')).toHaveLength(45);
    expect(stream.cancelledAtMs).toBeUndefined();
    expect(h.cp.streams).toHaveLength(1);
    expect(h.agent.state).toBe('connected');
  });

  it('fences itself when no heartbeat is acknowledged for a whole lease: stops its sessions, says nothing more, reconnects', async () => {
    const h = harness();
    const fenced: number[] = [];
    h.agent.on('fenced', (silentMs) => fenced.push(silentMs));
    const stream = await h.connect({ heartbeatIntervalMs: 1_000, leaseTtlMs: 5_000 });
    stream.autoAck = true;
    await h.assign(stream);
    await h.advance(3_000);

    // The control plane stops renewing: the last acknowledgement is the one for the heartbeat at 3000.
    stream.autoAck = false;
    await h.advance(4_999);
    expect(fenced).toEqual([]);
    expect(stream.cancelledAtMs).toBeUndefined();
    expect(h.agent.sessions.count).toBe(1);

    await h.advance(1);
    expect(fenced).toEqual([5_000]);
    expect(stream.cancelledAtMs).toBe(8_000);
    expect(h.agent.sessions.count).toBe(0);
    // The session may already run elsewhere: not even its `ended` goes up.
    expect(stream.sent.filter(({ at }) => at >= 8_000)).toEqual([]);
    expect(stream.sentOf('heartbeat').at(-1)?.at).toBe(7_000);

    // Reconnects after the backoff (attempt 0, jitter 0.5: 75 ms) and re-registers holding nothing.
    expect(h.agent.state).toBe('backoff');
    await h.advance(75);
    expect(h.cp.streams).toHaveLength(2);
    expect(h.cp.latest.openedAtMs).toBe(8_075);
    expect(await h.cp.latest.nextOf('hello')).toMatchObject({ workerId: WORKER_ID, heldSessions: [] });
  });

  it('gives up a stream that is not welcomed within the welcome timeout, and a Welcome stops the countdown', async () => {
    const h = harness({ overrides: { controlPlaneAddress: 'cp-a:50051,cp-b:50051' } });
    await h.settle();
    const first = h.cp.latest;
    expect(first.address).toBe('cp-a:50051');

    await h.advance(4_999);
    expect(first.cancelledAtMs).toBeUndefined();
    expect(h.agent.state).toBe('connecting');
    await h.advance(1);
    expect(first.cancelledAtMs).toBe(5_000);
    expect(h.agent.state).toBe('backoff');

    // The next attempt goes to the next address.
    await h.advance(75);
    const second = h.cp.latest;
    expect(second).not.toBe(first);
    expect(second).toMatchObject({ address: 'cp-b:50051', openedAtMs: 5_075 });

    await h.advance(4_000);
    second.autoAck = true;
    second.welcome({ heartbeatIntervalMs: 1_000, leaseTtlMs: 5_000 });
    await h.advance(10_000);
    expect(second.cancelledAtMs).toBeUndefined();
    expect(h.agent.state).toBe('connected');
    expect(h.cp.streams).toHaveLength(2);
  });

  it('waits longer after each failed attempt, jittered by the injected random, and starts over after a Welcome', async () => {
    const draws = [0, 1, 0.5, 0.25, 0, 1, 0.5];
    const random: Random = () => {
      const draw = draws.shift();
      if (draw === undefined) throw new Error('the agent drew more jitter than the test pinned');
      return draw;
    };
    const h = harness({ random });
    await h.settle();

    const gaps: number[] = [];
    for (let attempt = 0; attempt < 6; attempt++) {
      h.cp.latest.fail(status.UNAVAILABLE, 'control plane unavailable');
      const failedAt = h.time.monotonicMs();
      await h.advance(1_000);
      expect(h.cp.streams).toHaveLength(attempt + 2);
      gaps.push(h.cp.latest.openedAtMs - failedAt);
    }
    // Half the ceiling (100 ms doubling, capped at 1000) fixed, the other half scaled by the draw.
    expect(gaps).toEqual([50 + 0 * 50, 100 + 1 * 100, 200 + 0.5 * 200, 400 + 0.25 * 400, 500 + 0 * 500, 500 + 1 * 500]);

    const welcomed = h.cp.latest;
    welcomed.autoAck = true;
    welcomed.welcome({ heartbeatIntervalMs: 1_000, leaseTtlMs: 5_000 });
    await h.settle();
    welcomed.fail(status.UNAVAILABLE, 'replica restarting');
    const failedAt = h.time.monotonicMs();
    await h.advance(1_000);
    expect(h.cp.latest.openedAtMs - failedAt).toBe(50 + 0.5 * 50);
    expect(draws).toEqual([]);
  });

  it('drains: reports draining and waits for the control plane to acknowledge that before stopping', async () => {
    const h = harness();
    const stream = await h.connect({ heartbeatIntervalMs: 1_000, leaseTtlMs: 10_000 });

    const drained = h.agent.drainAndStop();
    await h.settle();
    const draining = stream.sentOf('heartbeat').filter((beat) => beat.value.draining);
    expect(draining).toMatchObject([{ at: 0, value: { sequence: 2n } }]);
    await h.advance(1_000);
    expect(h.agent.state).toBe('connected');

    stream.ack(2n);
    await h.settle();
    expect(h.agent.state).toBe('stopped');
    await drained;
    expect(h.time.monotonicMs()).toBe(1_000);
  });

  it('drains: waits for every session to be moved and its StopSession answered, then stops at once', async () => {
    const h = harness({ overrides: { engineFactory: slowStopping(500) } });
    const stream = await h.connect({ heartbeatIntervalMs: 1_000, leaseTtlMs: 10_000 });
    stream.autoAck = true;
    await h.assign(stream);

    const drained = h.agent.drainAndStop();
    await h.advance(2_000);
    expect(h.agent.state).toBe('connected');
    expect(h.agent.sessions.count).toBe(1);

    stream.send({ case: 'stopSession', value: { sessionId: SESSION, epoch: 1, reason: 'moved' } });
    await h.advance(499);
    expect(h.agent.state).toBe('connected');
    await h.advance(1);
    expect(h.agent.state).toBe('stopped');
    await drained;
    expect(h.time.monotonicMs()).toBe(2_500);
    // The StopSession was answered before the stream ended.
    expect(stream.sentOf('commandAck').at(-1)?.value).toMatchObject({
      accepted: true,
      detail: 'stopped; auth state kept',
    });
    expect(stream.halfClosed).toBe(true);
    expect(h.cp.closedChannels).toEqual(['cp-a:50051']);
    // No heartbeat, deadline, backoff or session timer is left behind.
    expect(h.time.pendingTimers).toBe(0);
  });

  it('stops anyway, stopping what it still holds, when the drain timeout passes', async () => {
    const h = harness();
    const stream = await h.connect({ heartbeatIntervalMs: 1_000, leaseTtlMs: 10_000 });
    stream.autoAck = true;
    await h.assign(stream);

    const drained = h.agent.drainAndStop();
    await h.advance(4_999);
    expect(h.agent.state).toBe('connected');
    expect(h.agent.sessions.count).toBe(1);

    await h.advance(1);
    expect(h.agent.state).toBe('stopped');
    await drained;
    expect(h.agent.sessions.count).toBe(0);
    expect(stream.halfClosed).toBe(true);
    expect(h.time.pendingTimers).toBe(0);
  });

  it('sends dispatched messages and reports them in one SessionEventBatch after the batch delay; lifecycle events go alone', async () => {
    const h = harness();
    const stream = await h.connect({ heartbeatIntervalMs: 1_000, leaseTtlMs: 60_000 });
    stream.autoAck = true;
    await h.assign(stream);
    stream.send({
      case: 'request',
      value: { sessionId: SESSION, epoch: 1, action: { case: 'sandboxScan', value: { phoneNumber: '15551234567' } } },
    });
    await stream.nextOf('response');
    await h.settle();
    // The link's events (QR, connected, checkpoint) are lifecycle events: one envelope each.
    expect(stream.sentOf('sessionEvent').map((e) => e.value.event.case)).toEqual(['qr', 'authCheckpoint', 'connected']);
    const ours = [1, 2, 3].map((n) => `00000000-0000-4000-8000-00000000000${n}`);
    const dispatchedAt = h.time.monotonicMs();

    stream.send({
      case: 'dispatchMessages',
      value: {
        messages: ours.map((messageId, n) => ({
          sessionId: SESSION,
          epoch: 1,
          messageId,
          content: { case: 'text' as const, value: { to: '15550001111', text: `message ${n}` } },
        })),
      },
    });
    await h.advance(9);
    expect(stream.sentOf('sessionEvents')).toEqual([]);
    await h.advance(1);

    const batches = stream.sentOf('sessionEvents');
    expect(batches.map((batch) => batch.at)).toEqual([dispatchedAt + 10]);
    expect(
      batches[0]?.value.events.map((event) => event.event.case === 'messageSent' && event.event.value.messageId),
    ).toEqual(ours);
    // Receipts follow in batches too, never one envelope per receipt.
    await h.advance(2_000);
    const receipts = stream
      .sentOf('sessionEvents')
      .flatMap((batch) => batch.value.events)
      .filter((event) => event.event.case === 'messageStatus');
    expect(receipts).toHaveLength(9);
    expect(stream.sentOf('sessionEvent').map((e) => e.value.event.case)).toEqual(['qr', 'authCheckpoint', 'connected']);
  });
});
