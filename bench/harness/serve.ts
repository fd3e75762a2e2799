import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { ConnectRouter } from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { isMessage, sendToParent, type ServerCommand, type ServerEvent } from './ipc.js';

/** A server running in a bench's child process: where it listens and how it stops. */
export interface ServedProcess {
  grpcUrl: string;
  httpUrl?: string;
  close(): Promise<void>;
}

/**
 * The life of a server the bench started (see BenchChild): start it, say
 * `ready` (or `failed`, and exit 1), and stop on SIGTERM or the bench's
 * `stop`. If the bench dies without stopping it, it does not linger holding
 * ports and leases.
 */
export async function serveInChild(start: () => Promise<ServedProcess>): Promise<void> {
  let served: ServedProcess | undefined;
  let stopping: Promise<void> | undefined;
  const stop = (code: number): Promise<void> =>
    (stopping ??= (async () => {
      await served?.close();
      process.exit(code);
    })());
  process.on('SIGTERM', () => void stop(0));
  process.on('message', (message: unknown) => {
    if (isMessage<ServerCommand>(message) && message.type === 'stop') void stop(0);
  });
  process.on('disconnect', () => void stop(1));
  try {
    served = await start();
    await sendToParent<ServerEvent>({ type: 'ready', grpcUrl: served.grpcUrl, httpUrl: served.httpUrl });
  } catch (error) {
    await sendToParent<ServerEvent>({
      type: 'failed',
      message: error instanceof Error ? error.message : String(error),
    });
    await stop(1);
  }
}

/** A bare connect-node server over h2c on 127.0.0.1 (any free port): what the floors are built on. */
export function listenH2c(routes: (router: ConnectRouter) => void): Promise<ServedProcess> {
  const server = http2.createServer(connectNodeAdapter({ routes }));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      const { port } = server.address() as AddressInfo;
      resolve({
        grpcUrl: `http://127.0.0.1:${port}`,
        // Open streams would hold close() forever; the process exits right after.
        close: async () => void server.close(),
      });
    });
  });
}

/** What serveApp needs of a control plane built by createApp (structural, so src/ may change around it). */
interface StartableApp {
  start(): Promise<{ grpcUrl: string; httpUrl: string }>;
  close(): Promise<void>;
}

/** serveInChild for a control plane: built, started, and closed again if it cannot start. */
export function serveApp(create: () => Promise<StartableApp>): Promise<void> {
  return serveInChild(async () => {
    const app = await create();
    try {
      const urls = await app.start();
      return { grpcUrl: urls.grpcUrl, httpUrl: urls.httpUrl, close: () => app.close() };
    } catch (error) {
      await app.close();
      throw error;
    }
  });
}
