import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import type { connectNodeAdapter } from '@connectrpc/connect-node';
import { StartupError } from '../../lib/errors.js';

/** What connectNodeAdapter returns; serves both HTTP/1.1 and HTTP/2 requests. */
export type NodeHandlerFn = ReturnType<typeof connectNodeAdapter>;

/** The two ports the control plane serves on. */
export interface Listeners {
  readonly httpPort: number;
  readonly grpcPort: number;
  /** Stops accepting new connections; existing streams keep running. */
  stopAccepting(): void;
  /** Closes remaining connections: politely (GOAWAY) first, by force after `graceMs`. */
  close(graceMs: number): Promise<void>;
}

/**
 * HTTP/1.1 (Connect JSON, gRPC-Web, probes) and cleartext HTTP/2 (gRPC for
 * agents, SDKs and grpcurl) listeners over the same handler.
 */
export async function listen(options: {
  host: string;
  httpPort: number;
  grpcPort: number;
  handler: NodeHandlerFn;
}): Promise<Listeners> {
  const sockets = new Set<Socket>();
  const sessions = new Set<http2.ServerHttp2Session>();

  const http1 = http.createServer(options.handler);
  // Connect streaming over HTTP/1.1 can last long; Node's default request
  // timeout would cut server streams after five minutes.
  http1.requestTimeout = 0;
  http1.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });

  const h2c = http2.createServer({}, options.handler);
  h2c.on('session', (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
  });

  await Promise.all([
    bind(http1, options.host, options.httpPort, 'HTTP_PORT'),
    bind(h2c, options.host, options.grpcPort, 'GRPC_PORT'),
  ]).catch(async (error: unknown) => {
    http1.close();
    h2c.close();
    throw error;
  });

  const closed = Promise.all([
    new Promise<void>((resolve) => http1.on('close', resolve)),
    new Promise<void>((resolve) => h2c.on('close', resolve)),
  ]);
  let accepting = true;
  const stopAccepting = () => {
    if (!accepting) return;
    accepting = false;
    http1.close();
    h2c.close();
  };

  return {
    httpPort: (http1.address() as AddressInfo).port,
    grpcPort: (h2c.address() as AddressInfo).port,
    stopAccepting,
    async close(graceMs) {
      stopAccepting();
      for (const session of sessions) session.close();
      http1.closeIdleConnections();
      const timer = setTimeout(() => {
        for (const session of sessions) session.destroy();
        for (const socket of sockets) socket.destroy();
      }, graceMs);
      await closed;
      clearTimeout(timer);
    },
  };
}

function bind(server: http.Server | http2.Http2Server, host: string, port: number, variable: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      reject(
        error.code === 'EADDRINUSE'
          ? new StartupError(
              `Port ${port} on ${host} is already in use (${variable}): stop the other process or set ${variable}.`,
            )
          : new StartupError(`Cannot listen on ${host}:${port} (${variable}): ${error.message}`),
      );
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
}
