import { Code, ConnectError } from '@connectrpc/connect';
import type { ConnectRouter } from '@connectrpc/connect';
import { Health, HealthCheckResponse_ServingStatus } from '../../gen/grpc/health/v1/health_pb.js';
import type { ServiceHealth, ServingStatus } from './service-health.js';

/**
 * Serves the standard gRPC health protocol
 * (https://github.com/grpc/grpc/blob/master/doc/health-checking.md) from
 * `health`, so Kubernetes gRPC probes, grpc_health_probe and load balancers
 * can check the control plane without knowing our API.
 */
export function registerHealth(router: ConnectRouter, health: ServiceHealth): void {
  router.service(Health, {
    check(request) {
      const status = health.get(request.service);
      if (status === undefined) {
        // The protocol asks for NOT_FOUND, which probes read as "misconfigured", not "down".
        throw new ConnectError(`unknown service: ${request.service}`, Code.NotFound);
      }
      return { status: toProtoStatus(status) };
    },

    list() {
      const statuses = Object.fromEntries(
        [...health.list()].map(([service, status]) => [service, { status: toProtoStatus(status) }]),
      );
      return { statuses };
    },

    // Per the protocol, an unknown service is not an error here: the call
    // stays open with SERVICE_UNKNOWN, so a client may start watching before
    // the service is registered.
    async *watch(request, context) {
      const { service } = request;
      const { signal } = context;
      // Parked here while waiting; called by a change to this service or by cancellation.
      let wake: (() => void) | undefined;
      const unsubscribe = health.subscribe((changed) => {
        if (changed === service) wake?.();
      });
      const onAbort = (): void => wake?.();
      signal.addEventListener('abort', onAbort);
      try {
        // Each turn reads the current status instead of queueing every
        // change, so a slow client gets the latest status, not a backlog.
        let sent: HealthCheckResponse_ServingStatus | undefined;
        while (!signal.aborted) {
          const status = toProtoStatus(health.get(service));
          if (status !== sent) {
            sent = status;
            yield { status };
            continue;
          }
          // Nothing can change between the read above and parking here:
          // listeners only run when this generator is suspended.
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          wake = undefined;
        }
      } finally {
        unsubscribe();
        signal.removeEventListener('abort', onAbort);
      }
    },
  });
}

function toProtoStatus(status: ServingStatus | undefined): HealthCheckResponse_ServingStatus {
  switch (status) {
    case 'SERVING':
      return HealthCheckResponse_ServingStatus.SERVING;
    case 'NOT_SERVING':
      return HealthCheckResponse_ServingStatus.NOT_SERVING;
    case undefined:
      return HealthCheckResponse_ServingStatus.SERVICE_UNKNOWN;
  }
}
