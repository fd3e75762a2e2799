import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import {
  Engine,
  type ResourceMetrics,
  ResourceMetricsSchema,
  type Worker as WorkerMessage,
  WorkerSchema as WorkerMessageSchema,
  WorkerStatus as WorkerStatusMessage,
  Schedulability as SchedulabilityMessage,
  type WorkerEvent as WorkerEventMessage,
  WorkerEventSchema as WorkerEventMessageSchema,
} from '../../gen/switchboard/v1/fleet_pb.js';
import type { WorkerEvent } from './worker-event.entity.js';
import { DomainError } from '../../lib/errors.js';
import type { EngineKind, Schedulability, Worker, WorkerMetrics, WorkerStatus } from './worker.entity.js';

/** Protobuf <-> domain mapping for fleet types, shared by the worker stream and admin handlers. */
export function engineFromProto(engine: Engine): EngineKind {
  switch (engine) {
    case Engine.SANDBOX:
      return 'SANDBOX';
    case Engine.BAILEYS:
      return 'BAILEYS';
    case Engine.UNSPECIFIED:
      throw DomainError.invalidArgument('supported_engines', 'engine must be specified');
    default:
      throw DomainError.invalidArgument('supported_engines', `unknown engine ${String(engine)}`);
  }
}

export function engineToProto(engine: EngineKind): Engine {
  switch (engine) {
    case 'SANDBOX':
      return Engine.SANDBOX;
    case 'BAILEYS':
      return Engine.BAILEYS;
  }
}

export function statusToProto(status: WorkerStatus): WorkerStatusMessage {
  switch (status) {
    case 'ONLINE':
      return WorkerStatusMessage.ONLINE;
    case 'OFFLINE':
      return WorkerStatusMessage.OFFLINE;
    case 'FAILED':
      return WorkerStatusMessage.FAILED;
    case 'REMOVED':
      return WorkerStatusMessage.REMOVED;
  }
}

export function schedulabilityToProto(value: Schedulability): SchedulabilityMessage {
  switch (value) {
    case 'ACTIVE':
      return SchedulabilityMessage.ACTIVE;
    case 'CORDONED':
      return SchedulabilityMessage.CORDONED;
    case 'DRAINING':
      return SchedulabilityMessage.DRAINING;
  }
}

export function workerEventToProto(event: WorkerEvent, workerName: string): WorkerEventMessage {
  return create(WorkerEventMessageSchema, {
    id: event.id,
    workerId: event.workerId,
    workerName,
    kind: event.kind,
    reason: event.reason,
    actorUserId: event.actorUserId ?? '',
    occurredAt: timestampFromDate(event.occurredAt),
  });
}

export function statusFromProto(status: WorkerStatusMessage): WorkerStatus | undefined {
  switch (status) {
    case WorkerStatusMessage.UNSPECIFIED:
      return undefined;
    case WorkerStatusMessage.ONLINE:
      return 'ONLINE';
    case WorkerStatusMessage.OFFLINE:
      return 'OFFLINE';
    case WorkerStatusMessage.FAILED:
      return 'FAILED';
    case WorkerStatusMessage.REMOVED:
      return 'REMOVED';
    default:
      throw DomainError.invalidArgument('status', `unknown worker status ${String(status)}`);
  }
}

export function metricsFromProto(metrics: ResourceMetrics | undefined): WorkerMetrics {
  if (!metrics) throw DomainError.invalidArgument('heartbeat.metrics', 'metrics are required');
  return {
    cpuPercent: metrics.cpuPercent,
    rssBytes: Number(metrics.rssBytes),
    heapUsedBytes: Number(metrics.heapUsedBytes),
    heapTotalBytes: Number(metrics.heapTotalBytes),
    loadAverage: [metrics.loadAverage1m, metrics.loadAverage5m, metrics.loadAverage15m],
    freeMemoryBytes: Number(metrics.freeMemoryBytes),
    totalMemoryBytes: Number(metrics.totalMemoryBytes),
    eventLoopLagMs: metrics.eventLoopLagMs,
    sessionCount: metrics.sessionCount,
    cpuCount: metrics.cpuCount,
  };
}

export function metricsToProto(metrics: WorkerMetrics): ResourceMetrics {
  return create(ResourceMetricsSchema, {
    cpuPercent: metrics.cpuPercent,
    rssBytes: BigInt(Math.round(metrics.rssBytes)),
    heapUsedBytes: BigInt(Math.round(metrics.heapUsedBytes)),
    heapTotalBytes: BigInt(Math.round(metrics.heapTotalBytes)),
    loadAverage1m: metrics.loadAverage[0],
    loadAverage5m: metrics.loadAverage[1],
    loadAverage15m: metrics.loadAverage[2],
    freeMemoryBytes: BigInt(Math.round(metrics.freeMemoryBytes)),
    totalMemoryBytes: BigInt(Math.round(metrics.totalMemoryBytes)),
    eventLoopLagMs: metrics.eventLoopLagMs,
    sessionCount: metrics.sessionCount,
    cpuCount: metrics.cpuCount,
  });
}

export function workerToProto(worker: Worker): WorkerMessage {
  const ts = (date: Date | null) => (date ? timestampFromDate(date) : undefined);
  return create(WorkerMessageSchema, {
    id: worker.id,
    name: worker.name,
    status: statusToProto(worker.status),
    statusReason: worker.statusReason,
    agentVersion: worker.agentVersion,
    capacity: worker.capacity,
    supportedEngines: worker.supportedEngines.map(engineToProto),
    labels: worker.labels,
    connectedSince: ts(worker.connectedSince),
    lastHeartbeatAt: ts(worker.lastHeartbeatAt),
    metrics: worker.metrics ? metricsToProto(worker.metrics) : undefined,
    firstSeenAt: ts(worker.firstSeenAt),
    disconnectedAt: ts(worker.disconnectedAt),
    replicaId: worker.replicaId ?? '',
    schedulability: schedulabilityToProto(worker.schedulability),
    schedulabilityReason: worker.schedulabilityReason,
  });
}
