import { Counter, type Registry } from 'prom-client';
import type { Clock } from '../../lib/clock.js';
import { DomainError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { RateLimits } from '../identity/rate-limits.js';
import { LogThrottle, type ThrottledWrite } from '../platform/log-throttle.js';

/**
 * Why a request was refused before it reached the interceptors. A closed
 * set, so the metric's label stays bounded:
 * - `undecodable`: the body is not a valid message (bad bytes, JSON, UTF-8,
 *   unknown fields or enum names).
 * - `too_large`: over MAX_REQUEST_BYTES.
 * - `unsupported`: a compression or encoding we do not offer.
 * - `other`: anything else Connect refused on its own.
 * - `rate_limited`: the caller's address is over its anonymous rate limit,
 *   so the refusal is RESOURCE_EXHAUSTED instead.
 */
export type RequestRefusalCause = 'undecodable' | 'too_large' | 'unsupported' | 'other' | 'rate_limited';

const CAUSES: readonly RequestRefusalCause[] = ['undecodable', 'too_large', 'unsupported', 'other', 'rate_limited'];

/** The cause of a refusal Connect answered with `code` (its lower-case code name). */
export function refusalCause(code: string): Exclude<RequestRefusalCause, 'rate_limited'> {
  switch (code) {
    case 'invalid_argument':
      return 'undecodable';
    case 'resource_exhausted':
      return 'too_large';
    case 'unimplemented':
      return 'unsupported';
    default:
      return 'other';
  }
}

/** Addresses remembered by the log throttle at once. */
const MAX_THROTTLED_KEYS = 10_000;

/**
 * Keeps requests that never reach the interceptors (Connect refuses them
 * while decoding) from being a way around the per-IP limit or a way to
 * write our logs: each counts against its address's anonymous rate limit
 * (the one the auth interceptor applies to calls without credentials), is
 * counted in `switchboard_requests_refused_total{cause}`, and is logged at
 * most once per address and cause per interval (with the count of those
 * not logged).
 */
export class RefusedRequests {
  private readonly counter: Counter<'cause'>;
  private readonly throttle: LogThrottle;

  constructor(
    registry: Registry,
    private readonly options: { clock: Clock; logger: Logger; rateLimits: RateLimits; logIntervalMs: number },
  ) {
    this.counter = new Counter({
      name: 'switchboard_requests_refused_total',
      help: 'Requests refused before they were decoded, by cause (all counted, log lines rate-limited per address).',
      labelNames: ['cause'],
      registers: [registry],
    });
    for (const cause of CAUSES) this.counter.inc({ cause }, 0);
    this.throttle = new LogThrottle({
      clock: options.clock,
      intervalMs: options.logIntervalMs,
      maxKeys: MAX_THROTTLED_KEYS,
    });
  }

  /**
   * Counts one refusal against `ip`'s anonymous limit. Returns the
   * RESOURCE_EXHAUSTED refusal (with retry-after) to answer instead once the
   * address is over it, or undefined to answer the refusal as it is.
   */
  async overLimit(ip: string): Promise<DomainError | undefined> {
    try {
      await this.options.rateLimits.consume(`ip:${ip}`, 'anonymous');
      return undefined;
    } catch (error) {
      if (error instanceof DomainError && error.code === 'RESOURCE_EXHAUSTED') return error;
      throw error;
    }
  }

  /** Counts a refusal and logs it through `write`, unless the address logged one of this cause within the interval. */
  record(ip: string, cause: RequestRefusalCause, write: ThrottledWrite): void {
    this.counter.inc({ cause });
    this.throttle.log(`${ip} ${cause}`, write);
  }

  get logger(): Logger {
    return this.options.logger;
  }
}
