import { systemClock } from '../lib/clock.js';
import { createLogger } from '../lib/logger.js';
import { systemRandom } from '../lib/random.js';
import { systemScheduler } from '../lib/timers.js';
import { Agent } from './agent.js';
import { AgentConfigError, loadAgentConfig } from './config.js';
import { grpcConnector } from './control-plane-client.js';

/**
 * Entry point of `npm run agent`, and the agent's composition root: config ->
 * Agent on real time and gRPC -> run until SIGTERM/SIGINT.
 */
async function main(): Promise<void> {
  let config;
  try {
    config = loadAgentConfig(process.argv.slice(2), process.env);
  } catch (error) {
    if (error instanceof AgentConfigError) {
      process.stderr.write(`${error.message}\n\n${error.usage}`);
      process.exit(2);
    }
    throw error;
  }
  const logger = createLogger({ level: config.logLevel, pretty: config.logFormat === 'pretty', name: 'agent' }).child({
    worker: config.workerName,
  });
  const agent = new Agent(config, logger, {
    clock: systemClock,
    scheduler: systemScheduler,
    random: systemRandom,
    connect: grpcConnector({ keepaliveTimeMs: config.keepaliveTimeMs, keepaliveTimeoutMs: config.keepaliveTimeoutMs }),
  });
  logger.info(
    {
      controlPlane: config.controlPlaneAddress,
      capacity: config.capacity,
      labels: config.labels,
      engines: config.engines,
    },
    'agent starting',
  );
  agent.start();

  let stopping = false;
  const stop = (signal: string, drain = false) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, drain }, 'agent stopping');
    (drain ? agent.drainAndStop() : agent.stop()).then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'agent did not stop cleanly');
        process.exit(1);
      },
    );
  };
  // SIGTERM is how orchestrators stop a worker: drain first so its work moves.
  process.on('SIGTERM', () => stop('SIGTERM', true));
  agent.on('shutdown', () => stop('shutdown command'));
  // Exit non-zero so a supervisor (systemd, Kubernetes) shows it instead of a silent retry loop.
  agent.on('removed', () => {
    if (stopping) return;
    stopping = true;
    void agent.stop().finally(() => process.exit(3));
  });
  // Started by `npm start` with an IPC channel: stop when that parent is gone.
  process.on('disconnect', () => stop('parent process exited'));
  process.on('SIGINT', () => stop('SIGINT'));
}

await main();
