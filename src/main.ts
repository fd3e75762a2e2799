import { StartupError } from '../lib/errors.js';
import { loadConfig, type Config } from './config.js';
import type { App } from './app.js';
import { describeError } from './platform/loggable-error.js';

/**
 * Entry point. `npm start` runs the developer setup (`--dev`): control plane
 * on embedded defaults plus one supervised local agent. `npm run serve` runs
 * the control plane alone, as in production.
 *
 * Only the configuration is loaded up front: a bad variable is reported in a
 * moment, before the ORM, gRPC and the rest are even imported.
 */
async function main(): Promise<void> {
  const dev = process.argv.includes('--dev');
  let config: Config;
  try {
    config = loadConfig(process.env, { dev });
  } catch (error) {
    return exitOnStartupError(error);
  }
  const { createApp } = await import('./app.js');
  let app: App;
  try {
    app = await createApp(config);
  } catch (error) {
    return exitOnStartupError(error);
  }
  let urls: Awaited<ReturnType<App['start']>>;
  try {
    urls = await app.start();
  } catch (error) {
    await app.close();
    return exitOnStartupError(error);
  }

  const developerSetup = dev
    ? await (await import('./dev/developer-setup.js')).startDeveloperSetup(app, urls)
    : undefined;

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    app.logger.info({ signal }, 'signal received');
    await developerSetup?.stop();
    await app.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

/** One line, whatever failed: a driver error's message quotes its statement (sealed keys, tokens). */
function exitOnStartupError(error: unknown): never {
  const line = error instanceof StartupError ? error.message : `could not start: ${describeError(error)}`;
  process.stderr.write(`switchboard: ${line}\n`);
  process.exit(1);
}

await main();
