import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readSendLog, type SandboxSendRecord } from '../../agent/engines/sandbox-send-log.js';
import { spawnAgentProcess, waitForExit } from '../support/agents.js';
import {
  eventually,
  postJson,
  spawnControlPlaneProcess,
  startControlPlane,
  type ControlPlaneProcess,
  type TestControlPlane,
} from '../support/control-plane.js';
import { signUp, type TestTenant } from '../support/tenants.js';

/**
 * The send pipeline's crash guarantees (docs/messaging.md, "Crash safety"),
 * with real processes: control planes and agents are killed with SIGKILL,
 * and the sandbox's send log (SANDBOX_SEND_LOG, one file shared by every
 * agent) is the record of what actually went out, by our message id.
 */

/** Shared by both scenarios; each sets its own lease (see below). */
const COMMON = {
  HEARTBEAT_INTERVAL_MS: '250',
  SWEEP_INTERVAL_MS: '100',
  FAILURE_GRACE_MS: '500',
  SESSION_QUOTA_FREE: '50',
  RATE_LIMIT_FREE_PER_MINUTE: '1000000',
  MESSAGE_QUEUE_PER_SESSION: '5000',
  // An unconfirmed dispatch is retried after 2 s: the restarted or surviving side picks it up quickly.
  MESSAGE_DISPATCH_TIMEOUT_MS: '2000',
  MESSAGE_DISPATCH_MAX_ATTEMPTS: '10',
  MESSAGE_SWEEP_INTERVAL_MS: '200',
  // Crash safety of the pipeline, not the governor's pacing (its own tests cover that).
  SEND_GOVERNOR: 'off',
};

const MESSAGES = 1_000;
const SENT_STATUSES = ['SENT', 'DELIVERED', 'READ'];

interface Row {
  id: string;
  status: string;
  whatsapp_message_id: string | null;
  failure_reason: string | null;
}

/**
 * One scenario's world: an in-process control plane that owns the database
 * and serves the test's calls (agents are pointed at control-plane processes
 * only, so the replica that dispatches is the one a test kills), a tenant,
 * a database client to read message rows, and the processes to clean up.
 */
function world(timing: Record<string, string>) {
  let cp: TestControlPlane;
  let tenant: TestTenant;
  let db: pg.Client;
  let dir: string;
  const children: ChildProcess[] = [];
  let agentOutput = '';
  const started = Date.now();
  const marks: string[] = [];
  /** Notes when a step happened, for the failure message. */
  const mark = (label: string) => marks.push(`${label} at ${Date.now() - started} ms`);
  const cps: ControlPlaneProcess[] = [];

  beforeAll(async () => {
    // The in-process control plane owns the database and serves the test's
    // admin calls; agents are pointed at control-plane processes only, so
    // the replica that dispatches is the one the test kills.
    cp = await startControlPlane({ env: timing });
    tenant = await signUp(cp.httpUrl, 'crash');
    db = new pg.Client({ connectionString: cp.databaseUrl });
    await db.connect();
  }, 60_000);
  afterEach(async () => {
    for (const child of children.splice(0)) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGCONT');
        child.kill('SIGKILL');
        await waitForExit(child);
      }
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  afterAll(async () => {
    await db?.end();
    await cp?.close();
  });

  const call = (path: string, body: unknown, url = cp.httpUrl) =>
    postJson(url, `switchboard.v1.${path}`, body, tenant.accessToken);

  const spawnCp = async (ports?: { http: number; grpc: number }) => {
    const proc = await spawnControlPlaneProcess(
      {
        ...timing,
        DATABASE_URL: cp.databaseUrl,
        REDIS_URL: process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379',
        REDIS_KEY_PREFIX: cp.redisPrefix,
      },
      ports,
    );
    children.push(proc.child);
    cps.push(proc);
    return proc;
  };
  const spawnAgent = async (name: string, address: string, sendLog: string) => {
    const child = spawnAgentProcess(
      ['--control-plane', address, '--name', name, '--join-token', await cp.joinToken(1)],
      { SANDBOX_SEND_LOG: sendLog, AGENT_LOG_LEVEL: 'info' },
    );
    children.push(child);
    // Read, so a chatty agent never blocks on a full pipe; kept for the failure message.
    child.stdout?.on('data', (chunk: Buffer) => (agentOutput += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (agentOutput += chunk.toString()));
    return child;
  };

  /** A session created and linked by a QR scan, WORKING on whichever agent is up. */
  const linkedSession = async (phone: string): Promise<string> => {
    const created = await call('SessionService/CreateSession', { name: `crash-${phone}`, engine: 'ENGINE_SANDBOX' });
    expect(created.status).toBe(200);
    const id = (created.json.session as { id: string }).id;
    await eventually(async () => {
      const qr = await call('SessionService/GetQrCode', { sessionId: id });
      return qr.status === 200 ? true : undefined;
    }, 30_000);
    const scan = await call('SandboxService/ScanQr', { sessionId: id, phoneNumber: phone, pushName: 'Crash' });
    expect(scan.status).toBe(200);
    await eventually(async () => {
      const got = await call('SessionService/GetSession', { sessionId: id });
      return (got.json.session as { status?: string } | undefined)?.status === 'SESSION_STATUS_WORKING'
        ? true
        : undefined;
    }, 30_000);
    return id;
  };

  /**
   * Accepts texts `from`..`to`-1 on the session, 50 requests at a time, and
   * returns our message ids in order. A refusal (the session is moving to
   * another worker) is retried with the same idempotency key, as a client
   * would, so a message is accepted once whatever happened in between.
   */
  const accept = async (sessionId: string, from: number, to: number, url = cp.httpUrl): Promise<string[]> => {
    const one = async (n: number): Promise<string> => {
      const body = {
        sessionId,
        to: `+1555100${String(n % 10_000).padStart(4, '0')}`,
        text: `crash message ${n}`,
        idempotencyKey: `crash-${n}`,
      };
      let last = '';
      try {
        return await eventually(
          async () => {
            const sent = await call('MessageService/SendText', body, url);
            const message = sent.json.message as { id?: string } | undefined;
            last = JSON.stringify(sent.json);
            return sent.status === 200 && message?.id ? message.id : undefined;
          },
          // Long enough for a failover on a loaded machine: lease, sweep, reassignment, resume.
          120_000,
          250,
        );
      } catch (error) {
        const session = await call('SessionService/GetSession', { sessionId });
        throw new Error(
          `${String(error)}: last answer ${last}; session ${JSON.stringify(session.json.session)}; ` +
            `agents (tail): ${agentOutput.slice(-4000)}`,
        );
      }
    };
    const ids: string[] = [];
    for (let start = from; start < to; start += 50) {
      ids.push(...(await Promise.all(Array.from({ length: Math.min(50, to - start) }, (_, i) => one(start + i)))));
    }
    return ids;
  };

  const rows = async (ids: string[]): Promise<Row[]> =>
    (
      await db.query<Row>(
        'select "id", "status", "whatsapp_message_id", "failure_reason" from "message" where "id" = any($1::uuid[])',
        [ids],
      )
    ).rows;

  /** Send log records by our message id (more than one record for an id is a double send). */
  const sendsById = (path: string) => {
    const byId = new Map<string, SandboxSendRecord[]>();
    for (const record of readSendLog(path)) byId.set(record.messageId, [...(byId.get(record.messageId) ?? []), record]);
    return byId;
  };

  /** Waits until `done` holds for the rows of `ids`; on timeout says where things stand. */
  const settled = async (ids: string[], done: (row: Row) => boolean, sendLog: string, timeoutMs: number) => {
    try {
      return await eventually(
        async () => {
          const all = await rows(ids);
          return all.length === ids.length && all.every(done) ? all : undefined;
        },
        timeoutMs,
        250,
      );
    } catch (error) {
      const counts: Record<string, number> = {};
      const reasons = new Set<string>();
      for (const row of await rows(ids)) {
        counts[row.status] = (counts[row.status] ?? 0) + 1;
        if (row.failure_reason) reasons.add(row.failure_reason);
      }
      throw new Error(
        `${String(error)}; ${marks.join(', ')}; statuses ${JSON.stringify(counts)} (failures: ${[...reasons].join(' | ')}); ${readSendLog(sendLog).length} sends logged; ` +
          `agent output (tail): ${agentOutput.slice(-3000)}; control planes (tail): ` +
          cps.map((proc) => proc.output().slice(-3000)).join('\n---\n'),
      );
    }
  };

  return {
    mark,
    settled,
    call,
    spawnCp,
    spawnAgent,
    linkedSession,
    accept,
    rows,
    sendsById,
    tempDir: () => (dir = mkdtempSync(join(tmpdir(), 'send-crash-'))),
  };
}

describe('send pipeline crash safety: a control plane killed', () => {
  // The agent is frozen while messages are accepted: a long lease, so it is not declared failed meanwhile,
  // and attempts enough that the redispatches into its unread stream (every 2 s) do not fail the messages.
  const w = world({ ...COMMON, LEASE_TTL_MS: '120000', MESSAGE_DISPATCH_MAX_ATTEMPTS: '100' });

  it('control plane SIGKILLed after accepting 1,000 messages, before they are dispatched: after a restart each is sent exactly once', async () => {
    const sendLog = join(w.tempDir(), 'sends.jsonl');
    const doomed = await w.spawnCp();
    const agent = await w.spawnAgent(`crash-a-${Date.now().toString(36)}`, doomed.grpcAddress, sendLog);
    const sessions = [await w.linkedSession('+15550009001'), await w.linkedSession('+15550009002')];

    // The agent is frozen while the messages are accepted: the control plane
    // dispatches into a stream nobody reads, and nothing is confirmed.
    agent.kill('SIGSTOP');
    w.mark('agent frozen');
    const ids = (
      await Promise.all(sessions.map((sessionId) => w.accept(sessionId, 0, MESSAGES / sessions.length, doomed.httpUrl)))
    ).flat();
    expect(ids).toHaveLength(MESSAGES);
    expect(readSendLog(sendLog)).toHaveLength(0);

    w.mark('accepted');
    doomed.child.kill('SIGKILL');
    await waitForExit(doomed.child);
    expect((await w.rows(ids)).filter((row) => SENT_STATUSES.includes(row.status))).toHaveLength(0);
    // Thawed, the agent may still send what reached its socket; its reports die with the stream.
    agent.kill('SIGCONT');

    const restarted = await w.spawnCp(doomed.ports);
    w.mark('control plane restarted');
    const final = await w.settled(ids, (row) => SENT_STATUSES.includes(row.status), sendLog, 90_000);

    const sends = w.sendsById(sendLog);
    expect([...sends.values()].filter((records) => records.length > 1)).toEqual([]);
    expect(new Set(sends.keys())).toEqual(new Set(ids));
    // What the control plane recorded is what went out.
    for (const row of final) expect(row.whatsapp_message_id).toBe(sends.get(row.id)?.[0]?.whatsappMessageId);
    restarted.child.kill('SIGKILL');
  }, 240_000);
});

describe('send pipeline crash safety: an agent killed', () => {
  // A lease short enough that the killed agent's sessions move within seconds, long enough that the
  // survivor is not declared failed too when the machine is loaded (1.5 s was, once).
  const w = world({ ...COMMON, LEASE_TTL_MS: '5000' });

  it('agent SIGKILLed mid-batch: its sessions move to another agent and every message ends sent once or FAILED, none lost', async () => {
    const sendLog = join(w.tempDir(), 'sends.jsonl');
    const replica: ControlPlaneProcess = await w.spawnCp();
    const doomed = await w.spawnAgent(`crash-b-${Date.now().toString(36)}`, replica.grpcAddress, sendLog);
    const sessions = [await w.linkedSession('+15550009011'), await w.linkedSession('+15550009012')];
    // The survivor joins once the sessions are placed, so they start on the doomed agent.
    await w.spawnAgent(`crash-c-${Date.now().toString(36)}`, replica.grpcAddress, sendLog);

    // Messages flow (accepted, dispatched, sent) while the agent is killed part-way through them.
    const half = MESSAGES / sessions.length;
    const first = await Promise.all(sessions.map((sessionId) => w.accept(sessionId, 0, half * 0.6, replica.httpUrl)));
    doomed.kill('SIGKILL');
    await waitForExit(doomed);
    const sentBeforeKill = readSendLog(sendLog).length;
    // The rest are accepted as soon as the sessions run again, on the survivor.
    const rest = await Promise.all(sessions.map((sessionId) => w.accept(sessionId, half * 0.6, half, replica.httpUrl)));
    const ids = [...first.flat(), ...rest.flat()];
    expect(new Set(ids).size).toBe(MESSAGES);

    const final = await w.settled(ids, (row) => row.status !== 'QUEUED', sendLog, 120_000);

    const sends = w.sendsById(sendLog);
    expect([...sends.values()].filter((records) => records.length > 1)).toEqual([]);
    for (const row of final) {
      if (SENT_STATUSES.includes(row.status)) {
        expect(sends.get(row.id)?.[0]?.whatsappMessageId, row.id).toBe(row.whatsapp_message_id);
      } else {
        expect(row.status).toBe('FAILED');
        expect(row.failure_reason).toBeTruthy();
      }
    }
    // Nothing the doomed agent sent is forgotten: it is recorded sent, under the id it went out with.
    const byId = new Map(final.map((row) => [row.id, row]));
    for (const [id] of sends) expect(SENT_STATUSES, id).toContain(byId.get(id)?.status);
    expect(sentBeforeKill).toBeGreaterThan(0);
  }, 300_000);
});
