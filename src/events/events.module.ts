import type { Config } from '../config.js';
import { RetentionPurge } from '../messaging/retention-purge.js';
import type { Resources } from '../platform/resources.js';
import { EventFeed } from './event-feed.js';
import { EventLog } from './event-log.js';
import { EventReader } from './event-reader.js';
import { EventStream } from './event-stream.js';

/** Events read per statement while a stream catches up. */
const STREAM_PAGE = 500;

/** The event log and what reads and prunes it, built once by the composition root. */
export interface Events {
  /** Appends in a change's transaction and announces after commit (sessions, messaging). */
  readonly log: EventLog;
  /** ListEvents and StreamEvents. */
  readonly feed: EventFeed;
  /** Deletes messages and events past retention (one replica at a time). */
  readonly retention: RetentionPurge;
  start(): void;
  stop(): Promise<void>;
}

export function createEvents(config: Config, resources: Resources): Events {
  const reader = new EventReader();
  const stream = new EventStream(resources, reader, {
    pollIntervalMs: config.history.streamPollIntervalMs,
    pageSize: STREAM_PAGE,
  });
  const retention = new RetentionPurge(resources, { ...config.history, replicaId: config.replicaId });
  return {
    log: new EventLog(resources.store),
    feed: new EventFeed(reader, stream),
    retention,
    start: () => retention.start(),
    stop: () => retention.stop(),
  };
}
