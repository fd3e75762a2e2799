import { describe, expect, it } from 'vitest';
import { createLogger } from '../../lib/logger.js';
import { ManualScheduler } from '../../lib/timers.js';
import {
  LocalAgentSupervisor,
  RESTART_BACKOFF,
  type AgentExit,
  type ChildAgent,
} from '../../src/dev/local-agent-supervisor.js';

/** A stand-in agent process the test ends when it likes. */
class FakeAgent implements ChildAgent {
  stopRequested = false;
  private finish!: (exit: AgentExit) => void;
  readonly exited = new Promise<AgentExit>((resolve) => (this.finish = resolve));

  constructor(readonly joinToken: string) {}

  exit(code: number | null, signal: string | null = null): void {
    this.finish({ code, signal });
  }

  stop(): Promise<void> {
    this.stopRequested = true;
    this.exit(null, 'SIGINT');
    return this.exited.then(() => undefined);
  }
}

/** Lets promise callbacks (the supervisor's reaction to an exit) run. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

function setUp(options: { tokens?: () => Promise<string> } = {}) {
  const time = new ManualScheduler(new Date('2026-11-30T00:00:00Z'));
  const agents: FakeAgent[] = [];
  let issued = 0;
  const supervisor = new LocalAgentSupervisor({
    spawn: (token) => {
      const agent = new FakeAgent(token);
      agents.push(agent);
      return agent;
    },
    joinToken: options.tokens ?? (() => Promise.resolve(`token-${++issued}`)),
    clock: time,
    scheduler: time,
    // The top of each jitter range: delays are the backoff ceilings.
    random: () => 1,
    logger: createLogger({ level: 'silent', pretty: false }),
  });
  /** Advances fake time and lets the restart it triggers spawn. */
  const advance = async (ms: number) => {
    time.advance(ms);
    await settle();
  };
  return { supervisor, agents, advance };
}

describe('the developer setup keeps its local agent running', () => {
  it('starts it again after it exits, each time with a fresh join token', async () => {
    const { supervisor, agents, advance } = setUp();
    await supervisor.start();
    expect(agents.map((agent) => agent.joinToken)).toEqual(['token-1']);

    agents[0]?.exit(3); // removed from the fleet
    await settle();
    await advance(RESTART_BACKOFF.initialMs - 1);
    expect(agents).toHaveLength(1);
    await advance(1);
    expect(agents.map((agent) => agent.joinToken)).toEqual(['token-1', 'token-2']);
    await supervisor.stop();
  });

  it('waits longer each time an agent exits soon after starting, up to the cap', async () => {
    const { supervisor, agents, advance } = setUp();
    await supervisor.start();
    const delays: number[] = [];
    for (let restart = 0; restart < 7; restart += 1) {
      agents.at(-1)?.exit(1);
      await settle();
      const before = agents.length;
      let waited = 0;
      while (agents.length === before) {
        await advance(100);
        waited += 100;
      }
      delays.push(waited);
    }
    expect(delays).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000]);
    await supervisor.stop();
  });

  it('starts from the first delay again after an agent ran for a minute', async () => {
    const { supervisor, agents, advance } = setUp();
    await supervisor.start();
    agents[0]?.exit(1);
    await settle();
    await advance(1000);
    agents[1]?.exit(1);
    await settle();
    await advance(2000); // second restart: the delay had doubled
    expect(agents).toHaveLength(3);

    await advance(60_000); // this one runs a minute
    agents[2]?.exit(0);
    await settle();
    await advance(1000);
    expect(agents).toHaveLength(4);
    await supervisor.stop();
  });

  it('retries when no join token could be made, without spawning an agent that cannot enrol', async () => {
    let calls = 0;
    const { supervisor, agents, advance } = setUp({
      tokens: () => (++calls === 1 ? Promise.reject(new Error('database busy')) : Promise.resolve('late-token')),
    });
    await supervisor.start();
    expect(agents).toHaveLength(0);
    await advance(1000);
    expect(agents.map((agent) => agent.joinToken)).toEqual(['late-token']);
    await supervisor.stop();
  });

  it('once stopped, stops the running agent and starts none again', async () => {
    const { supervisor, agents, advance } = setUp();
    await supervisor.start();
    await supervisor.stop();
    expect(agents[0]?.stopRequested).toBe(true);
    await advance(120_000);
    expect(agents).toHaveLength(1);
  });

  it('cancels a restart that was pending when it was stopped', async () => {
    const { supervisor, agents, advance } = setUp();
    await supervisor.start();
    agents[0]?.exit(0);
    await settle();
    await supervisor.stop();
    await advance(120_000);
    expect(agents).toHaveLength(1);
  });
});
