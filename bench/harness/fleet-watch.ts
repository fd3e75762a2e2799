import { timestampMs } from '@bufbuild/protobuf/wkt';
import { createClient, type Client } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { AdminService, type WatchWorkersResponse } from '../../gen/switchboard/v1/admin_pb.js';
import { AuthService } from '../../gen/switchboard/v1/auth_pb.js';
import { WorkerStatus } from '../../gen/switchboard/v1/fleet_pb.js';
import { withTimeout } from './interrupt.js';

/** One worker event as the watcher received it. */
export interface ObservedEvent {
  workerName: string;
  /** ONLINE, OFFLINE, FAILED, ... as in WorkerEvent.kind. */
  kind: string;
  reason: string;
  /** performance.now() when the message was read off the stream: what an operator's dashboard would see. */
  receivedAtMs: number;
  /** The control plane's own stamp (wall clock, same machine), to tell deciding from delivering. */
  occurredAtEpochMs: number | undefined;
}

type Admin = Client<typeof AdminService>;

/**
 * AdminService as the platform admin: logs in over Connect (HTTP/1.1; JSON
 * when `json`) and returns the client and the headers every call presents.
 */
export async function loginAdmin(
  httpUrl: string,
  credentials: { email: string; password: string },
  json = false,
): Promise<{ admin: Admin; headers: Record<string, string> }> {
  const transport = createConnectTransport({ baseUrl: httpUrl, httpVersion: '1.1', useBinaryFormat: !json });
  const { tokens } = await createClient(AuthService, transport).login(
    { email: credentials.email, password: credentials.password },
    { timeoutMs: 30_000 },
  );
  if (!tokens?.accessToken) throw new Error('platform admin login returned no access token');
  return { admin: createClient(AdminService, transport), headers: { authorization: `Bearer ${tokens.accessToken}` } };
}

/**
 * The fleet as an operator watching AdminService/WatchWorkers sees it:
 * logged in as a platform admin, it keeps every one of the run's workers'
 * latest status and every event with the moment it arrived.
 */
export class FleetWatch {
  private readonly statuses = new Map<string, WorkerStatus>();
  private readonly changed = new Set<() => void>();
  readonly events: ObservedEvent[] = [];
  /** Rejects if the stream ends or errors before close(); never resolves. */
  readonly failed: Promise<never>;
  private closing = false;

  private constructor(
    private readonly admin: Admin,
    private readonly headers: Record<string, string>,
    private readonly abort: AbortController,
    private readonly namePrefix: string,
    stream: AsyncIterable<WatchWorkersResponse>,
    snapshotArrived: () => void,
  ) {
    this.failed = this.consume(stream, snapshotArrived);
    // Races observe `failed`; this keeps an unobserved failure from crashing the bench.
    this.failed.catch(() => {});
  }

  /** Logs in with the bootstrap admin and subscribes; resolves once the snapshot has arrived. */
  static async open(
    httpUrl: string,
    credentials: { email: string; password: string },
    namePrefix: string,
  ): Promise<FleetWatch> {
    const { admin, headers } = await loginAdmin(httpUrl, credentials);
    const abort = new AbortController();
    const stream = admin.watchWorkers({}, { headers, signal: abort.signal });
    let snapshotArrived = () => {};
    const snapshot = new Promise<void>((resolve) => (snapshotArrived = resolve));
    const watch = new FleetWatch(admin, headers, abort, namePrefix, stream, snapshotArrived);
    try {
      await withTimeout(Promise.race([snapshot, watch.failed]), 30_000, 'no WatchWorkers snapshot within 30 s');
    } catch (error) {
      watch.close();
      throw error;
    }
    return watch;
  }

  /** The latest status the stream reported for one of the run's workers. */
  status(name: string): WorkerStatus | undefined {
    return this.statuses.get(name);
  }

  /** How many of `names` are ONLINE right now, as far as the stream has said. */
  countOnline(names: Iterable<string>): number {
    let online = 0;
    for (const name of names) if (this.statuses.get(name) === WorkerStatus.ONLINE) online++;
    return online;
  }

  /** Resolves once `predicate` holds (checked now and after every message); fails on timeout or stream failure. */
  async until(predicate: () => boolean, timeoutMs: number, what: string): Promise<void> {
    if (predicate()) return;
    let check = () => {};
    const reached = new Promise<void>((resolve) => {
      check = () => {
        if (predicate()) resolve();
      };
      this.changed.add(check);
    });
    try {
      await withTimeout(Promise.race([reached, this.failed]), timeoutMs, `${what}: not within ${timeoutMs} ms`);
    } finally {
      this.changed.delete(check);
    }
  }

  /** What AdminService/ListWorkers says, by worker name: a cross-check of the stream's view. */
  async listStatuses(): Promise<Map<string, WorkerStatus>> {
    const statuses = new Map<string, WorkerStatus>();
    let pageToken = '';
    do {
      const page = await this.admin.listWorkers(
        { pageSize: 1000, pageToken },
        { timeoutMs: 30_000, headers: this.headers },
      );
      for (const worker of page.workers) {
        if (worker.name.startsWith(this.namePrefix)) statuses.set(worker.name, worker.status);
      }
      pageToken = page.nextPageToken;
    } while (pageToken !== '');
    return statuses;
  }

  close(): void {
    this.closing = true;
    this.abort.abort();
  }

  private async consume(stream: AsyncIterable<WatchWorkersResponse>, snapshotArrived: () => void): Promise<never> {
    let first = true;
    try {
      for await (const message of stream) {
        const receivedAtMs = performance.now();
        if (first) {
          first = false;
          for (const worker of message.snapshot) this.record(worker.name, worker.status);
          snapshotArrived();
        } else if (message.worker && message.event && message.worker.name.startsWith(this.namePrefix)) {
          const { event } = message;
          this.events.push({
            workerName: message.worker.name,
            kind: event.kind,
            reason: event.reason,
            receivedAtMs,
            occurredAtEpochMs: event.occurredAt ? timestampMs(event.occurredAt) : undefined,
          });
          this.record(message.worker.name, message.worker.status);
        }
        for (const check of this.changed) check();
      }
    } catch (error) {
      if (!this.closing)
        throw new Error(`WatchWorkers failed: ${error instanceof Error ? error.message : String(error)}`);
    }
    if (this.closing) return new Promise<never>(() => {});
    throw new Error('WatchWorkers ended while the bench was still watching');
  }

  private record(name: string, status: WorkerStatus): void {
    if (name.startsWith(this.namePrefix)) this.statuses.set(name, status);
  }
}
