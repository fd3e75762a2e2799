import { parseArgs, type ParseArgsConfig } from 'node:util';
import { z } from 'zod';

/** Thrown for flags or variables a person must fix; the message names them. */
export class BenchOptionsError extends Error {}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

/** A whole number within bounds, with a default. */
export const count = (fallback: number, min: number, max: number) =>
  z.coerce.number().int().min(min).max(max).default(fallback);

/**
 * A URL on this machine only: the benches create and drop databases and
 * write Redis keys, so they refuse anything but the machine's own servers.
 */
export const loopbackUrl = (protocols: readonly string[], fallback: string) =>
  z
    .string()
    .default(fallback)
    .refine(
      (value) => {
        try {
          const url = new URL(value);
          return protocols.includes(url.protocol) && (LOOPBACK.has(url.hostname) || url.hostname.startsWith('127.'));
        } catch {
          return false;
        }
      },
      { message: `expected a ${protocols.join(' or ')} URL on this machine (127.0.0.1, localhost or [::1])` },
    );

/** The PostgreSQL and Redis every bench here uses; each run creates its own database and key prefix. */
export const backingServices = {
  BENCH_POSTGRES_URL: loopbackUrl(['postgres:', 'postgresql:'], 'postgres://postgres@127.0.0.1:5432/test'),
  BENCH_REDIS_URL: loopbackUrl(['redis:'], 'redis://127.0.0.1:6379'),
};

/** parseArgs with strict checking; its complaints become BenchOptionsError. */
export function parseFlags<T extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: T) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values;
  } catch (error) {
    throw new BenchOptionsError(error instanceof Error ? error.message : String(error));
  }
}

/** Validates the merged flags and variables, naming every bad one. */
export function validate<S extends z.ZodType>(schema: S, merged: unknown): z.infer<S> {
  const parsed = schema.safeParse(merged);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${String(issue.path[0])}: ${issue.message}`);
    throw new BenchOptionsError(`Invalid options: ${problems.join('; ')}`);
  }
  return parsed.data;
}
