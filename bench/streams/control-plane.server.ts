import { createApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { isMessage, sendToParent, type ServerCommand, type ServerEvent } from './ipc.js';

/**
 * The control plane under test: the production composition root
 * (createApp + start), configured only by the environment the orchestrator
 * passes, alone in its process so /proc shows its RSS and CPU and nothing else.
 */
let app: App | undefined;
let stopping: Promise<void> | undefined;

const stop = (code: number): Promise<void> =>
  (stopping ??= (async () => {
    await app?.close();
    process.exit(code);
  })());

try {
  app = await createApp(loadConfig(process.env));
  const urls = await app.start();
  void sendToParent<ServerEvent>({ type: 'ready', grpcUrl: urls.grpcUrl, httpUrl: urls.httpUrl });
} catch (error) {
  await sendToParent<ServerEvent>({ type: 'failed', message: error instanceof Error ? error.message : String(error) });
  await stop(1);
}

process.on('SIGTERM', () => void stop(0));
process.on('message', (message: unknown) => {
  if (isMessage<ServerCommand>(message) && message.type === 'stop') void stop(0);
});
// The orchestrator died without stopping us: do not linger holding ports and leases.
process.on('disconnect', () => void stop(1));
