/** Coordination-store key of a worker's liveness lease; its value names the owner (see leaseHolder). */
export function leaseKey(workerId: string): string {
  return `worker:${workerId}:lease`;
}

/**
 * The value of a worker's lease: the replica holding its stream and the
 * stream. So the lease is also the routing table (worker -> replica): any
 * replica finds a worker's owner with one read, and a lease held by a dead
 * replica expires with it.
 */
export function leaseHolder(replicaId: string, streamId: string): string {
  return `${replicaId}|${streamId}`;
}

/** The replica named in a lease value (null for no lease). */
export function ownerReplica(holder: string | null): string | null {
  if (holder === null) return null;
  const bar = holder.lastIndexOf('|');
  return bar < 0 ? null : holder.slice(0, bar);
}

/** Coordination-store key of a replica's own liveness lease, renewed every sweep. */
export function replicaKey(replicaId: string): string {
  return `replica:${replicaId}:lease`;
}

/** Whether a lease last renewed at `renewedAtMs` has run out at `nowMs` (monotonic times). */
export function isLeaseExpired(renewedAtMs: number, ttlMs: number, nowMs: number): boolean {
  return nowMs - renewedAtMs >= ttlMs;
}
