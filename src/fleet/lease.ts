/** Coordination-store key of a worker's liveness lease; its value is the stream id holding it. */
export function leaseKey(workerId: string): string {
  return `worker:${workerId}:lease`;
}

/** Whether a lease last renewed at `renewedAtMs` has run out at `nowMs` (monotonic times). */
export function isLeaseExpired(renewedAtMs: number, ttlMs: number, nowMs: number): boolean {
  return nowMs - renewedAtMs >= ttlMs;
}
