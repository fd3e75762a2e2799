import { setTimeout as sleep } from 'node:timers/promises';
import { ConnectError } from '@connectrpc/connect';
import { Engine } from '../../gen/switchboard/v1/fleet_pb.js';
import { SessionStatus } from '../../gen/switchboard/v1/session_pb.js';
import { forEachBounded } from '../harness/bounded.js';
import type { BenchTenant } from '../harness/tenant.js';
import { guarded } from '../harness/interrupt.js';

/** How long getting the sessions WORKING took, phase by phase (seconds from the first create). */
export interface SetupFigures {
  createdS: number;
  workingS: number;
  scans: number;
  /** ScanQr calls refused (then tried again on the next pass). */
  scanRetries: number;
}

const POLL_MS = 500;

/**
 * Creates `count` SANDBOX sessions and links each one as a tenant would:
 * once ListSessions shows it SCAN_QR, SandboxService/ScanQr with its own
 * simulated phone (+1555 and the session's index). At most `concurrency`
 * calls are in flight; ListSessions is polled every half second until every
 * session is WORKING. Returns the session ids.
 */
export async function createWorkingSessions(options: {
  tenant: BenchTenant;
  count: number;
  concurrency: number;
  timeoutMs: number;
  failed: Promise<never>;
  progress: (message: string) => void;
}): Promise<{ ids: string[]; figures: SetupFigures }> {
  const { tenant, count, concurrency } = options;
  const startedMs = performance.now();
  const deadline = startedMs + options.timeoutMs;
  const index = new Map<string, number>();
  await guarded(
    forEachBounded(
      Array.from({ length: count }, (_, i) => i),
      concurrency,
      async (i) => {
        const { session } = await tenant.sessions.createSession(
          { name: `send-${String(i).padStart(6, '0')}`, engine: Engine.SANDBOX },
          { timeoutMs: 60_000 },
        );
        if (!session) throw new Error('CreateSession returned no session');
        index.set(session.id, i);
      },
    ),
    options.failed,
  );
  const createdS = (performance.now() - startedMs) / 1000;
  options.progress(`${count} sessions created in ${createdS.toFixed(1)} s; scanning their QR codes`);

  const scanned = new Set<string>();
  let scans = 0;
  let scanRetries = 0;
  let lastReport = 0;
  for (;;) {
    const working = await listIds(tenant, SessionStatus.WORKING);
    if (working.length === count) break;
    if (performance.now() > deadline) {
      throw new Error(`only ${working.length} of ${count} sessions WORKING after ${options.timeoutMs / 1000} s`);
    }
    const toScan = (await listIds(tenant, SessionStatus.SCAN_QR)).filter((id) => !scanned.has(id));
    await guarded(
      forEachBounded(toScan, concurrency, async (id) => {
        scanned.add(id);
        scans++;
        try {
          await tenant.sandbox.scanQr(
            { sessionId: id, phoneNumber: `+1555${String(index.get(id) ?? 0).padStart(7, '0')}`, pushName: 'Bench' },
            { timeoutMs: 30_000 },
          );
        } catch (error) {
          // E.g. the QR code changed between the listing and the scan: try again on the next pass.
          scanned.delete(id);
          scanRetries++;
          if (scanRetries > count)
            throw new Error(`too many ScanQr refusals; last: ${ConnectError.from(error).message}`);
        }
      }),
      options.failed,
    );
    if (performance.now() - lastReport > 5000) {
      lastReport = performance.now();
      options.progress(`${working.length} of ${count} WORKING, ${scanned.size} scanned`);
    }
    await guarded(sleep(POLL_MS), options.failed);
  }
  return {
    ids: [...index.keys()],
    figures: { createdS, workingS: (performance.now() - startedMs) / 1000, scans, scanRetries },
  };
}

/** The tenant's sessions with this status, through ListSessions (pages of 1,000). */
async function listIds(tenant: BenchTenant, status: SessionStatus): Promise<string[]> {
  const ids: string[] = [];
  let pageToken = '';
  do {
    const page = await tenant.sessions.listSessions({ pageSize: 1000, pageToken, status }, { timeoutMs: 30_000 });
    ids.push(...page.sessions.map((session) => session.id));
    pageToken = page.nextPageToken;
  } while (pageToken !== '');
  return ids;
}
