import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { Logger } from '../../lib/logger.js';

/** A logger whose lines a test can read back, parsed. */
export function captureLogs(level = 'info'): { logger: Logger; lines: () => Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n'))
        if (line.trim()) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level }, sink), lines: () => lines };
}
