/**
 * Whether a service should get traffic. The protocol's UNKNOWN and
 * SERVICE_UNKNOWN are not statuses a service can be in, so they are not here:
 * the health handler derives them.
 */
export type ServingStatus = 'SERVING' | 'NOT_SERVING';

/** Told about every status change, so the health Watch stream can push it. */
export type ServiceHealthListener = (service: string, status: ServingStatus) => void;

/**
 * The serving status of each service this process exposes, under the service
 * name that health clients ask for ('' means the whole server). It is the
 * one place that the composition root (readiness, shutdown) and the gRPC
 * health service share, so it holds plain strings and knows nothing of
 * protobuf.
 *
 * Every service starts NOT_SERVING. The composition root calls
 * setAll('SERVING') once its dependencies are up, so a load balancer never
 * routes traffic to a half-built server.
 */
export class ServiceHealth {
  /** The name health clients use for the server as a whole. */
  static readonly SERVER = '';

  private readonly statuses = new Map<string, ServingStatus>();
  // A set of wrapper objects, not of functions, so subscribing the same
  // function twice gives two subscriptions that are removed separately.
  private readonly listeners = new Set<{
    readonly notify: ServiceHealthListener;
  }>();

  constructor(serviceNames: readonly string[]) {
    for (const name of [ServiceHealth.SERVER, ...serviceNames]) {
      this.statuses.set(name, 'NOT_SERVING');
    }
  }

  /**
   * Records a status. A name the constructor did not list becomes known, as
   * with grpc-go's SetServingStatus, so anyone already watching it sees it
   * turn from SERVICE_UNKNOWN into a real status. Listeners hear only real
   * changes, so watchers get no duplicate updates.
   */
  set(service: string, status: ServingStatus): void {
    if (this.statuses.get(service) === status) return;
    this.statuses.set(service, status);
    // Copied because a listener may unsubscribe while being notified.
    for (const listener of [...this.listeners]) listener.notify(service, status);
  }

  /** Marks every known service, the server included, e.g. NOT_SERVING at the start of shutdown. */
  setAll(status: ServingStatus): void {
    for (const service of [...this.statuses.keys()]) this.set(service, status);
  }

  /** The status, or undefined for a service name this server does not know. */
  get(service: string): ServingStatus | undefined {
    return this.statuses.get(service);
  }

  /** A copy of every known service's status, for the health List call. */
  list(): ReadonlyMap<string, ServingStatus> {
    return new Map(this.statuses);
  }

  /** Calls `listener` on every change until the returned function is called. */
  subscribe(listener: ServiceHealthListener): () => void {
    const subscription = { notify: listener };
    this.listeners.add(subscription);
    return () => {
      this.listeners.delete(subscription);
    };
  }
}
