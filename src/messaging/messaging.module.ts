import { randomUUID } from 'node:crypto';
import type { EventLog } from '../events/event-log.js';
import type { Resources } from '../platform/resources.js';
import { openGate, type DispatchGate } from './dispatch-gate.js';
import type { DispatchChannel } from './dispatch-channel.js';
import { Dispatcher } from './dispatcher.js';
import { MessageService, type MessageJson } from './message.service.js';
import type { MessagingConfig } from './messaging.config.js';
import { MessageReportApplier } from './report-applier.js';
import type { MessageReport } from './report-batch.js';
import type { SessionRouting } from './session-routing.js';
import type { EntityManager } from '@mikro-orm/postgresql';

/** The messaging capability, built once by the composition root. */
export interface Messaging {
  readonly service: MessageService;
  readonly dispatcher: Dispatcher;
  /** What workers report about messages, for the sessions capability (its MessageReports port). */
  readonly reports: {
    apply(
      tx: EntityManager,
      workerId: string,
      reports: readonly MessageReport[],
      now: Date,
    ): Promise<() => Promise<void>>;
    sessionWorking(workerId: string): void;
  };
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** What messaging is handed: the ports it calls, implemented by other capabilities. */
export interface MessagingPorts {
  sessions: SessionRouting;
  channel: DispatchChannel;
  events: EventLog;
  toJson: MessageJson;
  /** The send governor; everything is released without one. */
  gate?: DispatchGate;
  /** Message ids and generated idempotency keys. */
  newId?: () => string;
}

export function createMessaging(config: MessagingConfig, resources: Resources, ports: MessagingPorts): Messaging {
  const newId = ports.newId ?? randomUUID;
  const dispatcher = new Dispatcher(resources, config, {
    gate: ports.gate ?? openGate,
    channel: ports.channel,
    events: ports.events,
    toJson: ports.toJson,
  });
  const applier = new MessageReportApplier(config, { events: ports.events, toJson: ports.toJson, newId });
  const service = new MessageService(resources.clock, {
    sessions: ports.sessions,
    events: ports.events,
    toJson: ports.toJson,
    dispatch: dispatcher,
    newId,
    limits: { queuePerSession: config.queuePerSession },
  });
  return {
    service,
    dispatcher,
    reports: {
      async apply(tx, workerId, reports, now) {
        const applied = await applier.apply(tx, reports, now);
        return async () => {
          dispatcher.confirmed(workerId, applied.confirmed);
          await applier.announce(applied).catch(() => undefined);
        };
      },
      sessionWorking: (workerId) => dispatcher.wake(workerId),
    },
    start: () => dispatcher.start(),
    stop: () => dispatcher.stop(),
  };
}
