import { pino, type Logger } from 'pino';

export type { Logger };

/** Options for the process logger; `pretty` is for people reading a terminal. */
export interface LoggerOptions {
  level: string;
  pretty: boolean;
  name?: string;
}

export function createLogger(options: LoggerOptions): Logger {
  return pino({
    level: options.level,
    name: options.name,
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: {
      paths: ['*.password', '*.authorization', '*.token', 'req.headers.authorization'],
      censor: '[redacted]',
    },
    ...(options.pretty
      ? {
          transport: {
            target: 'pino-pretty',
            options: {
              colorize: Boolean(process.stdout.isTTY),
              translateTime: 'SYS:HH:MM:ss.l',
              ignore: 'pid,hostname',
            },
          },
        }
      : {}),
  });
}
