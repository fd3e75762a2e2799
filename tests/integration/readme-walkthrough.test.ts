import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, login } from '../support/control-plane.js';
import { waitForExit } from '../support/agents.js';
import { bufCurlCommands, readmeSection, shellBlocks } from '../support/readme.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** Runs a shell script the way a user pastes it into bash (errors stop it, as a test must know). */
function bash(script: string, env: Record<string, string> = {}, timeoutMs = 90_000) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn('bash', ['-c', `set -eu\n${script}`], { cwd: root, env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * The README's walkthrough, exactly as written (only the ports are this
 * run's), against one `npm start`: run twice in a row, each run ends with
 * the message READ; and the README's read-only gRPC examples with buf curl.
 */
describe("README: a tenant's first five minutes, as written (npm start, embedded defaults)", () => {
  let child: ChildProcess;
  let dataDir: string;
  let stdout = '';
  let httpPort = '';
  let grpcPort = '';
  let adminToken = '';

  const withPorts = (text: string) =>
    text.replaceAll('localhost:8080', `localhost:${httpPort}`).replaceAll('localhost:50051', `localhost:${grpcPort}`);

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'sb-readme-'));
    child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', '--dev'], {
      cwd: root,
      env: {
        ...process.env,
        HTTP_PORT: '0',
        GRPC_PORT: '0',
        DATA_DIR: dataDir,
        DATABASE_URL: '',
        REDIS_URL: '',
        LOG_FORMAT: 'json',
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr?.on('data', () => undefined);
    const banner = await eventually(async () => {
      const http = /Connect\/HTTP\s+http:\/\/[^:]+:(\d+)/.exec(stdout)?.[1];
      const grpc = /gRPC \(h2c\)\s+http:\/\/[^:]+:(\d+)/.exec(stdout)?.[1];
      const admin = /Platform admin \(shown once, keep it\): (\S+) \/ (\S+)/.exec(stdout);
      return http && grpc && admin ? { http, grpc, email: admin[1] ?? '', password: admin[2] ?? '' } : undefined;
    }, 60_000);
    httpPort = banner.http;
    grpcPort = banner.grpc;
    adminToken = await login(`http://localhost:${httpPort}`, banner.email, banner.password);
    // The walkthrough's session needs the local agent online.
    await eventually(async () => {
      const response = await fetch(`http://localhost:${httpPort}/switchboard.v1.AdminService/ListWorkers`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${adminToken}` },
        body: '{}',
      });
      const json = (await response.json()) as { workers?: { status: string }[] };
      return json.workers?.some((w) => w.status === 'WORKER_STATUS_ONLINE') ? true : undefined;
    }, 60_000);
  }, 120_000);

  afterAll(async () => {
    child?.kill('SIGTERM');
    if (child) await waitForExit(child);
    rmSync(dataDir, { recursive: true, force: true });
  });

  const [helpers = '', steps = '', watch = ''] = shellBlocks(readmeSection("A tenant's first five minutes"));

  it('runs to a message READ, twice in a row against the same system (sign-up then log-in, the session replaced)', async () => {
    for (const run of [1, 2]) {
      const result = await bash(withPorts(`${helpers}\n${steps}\necho "SID=$SID"\necho "TOKEN=$TOKEN"`));
      expect(result.stderr, `run ${run}`).not.toMatch(/still not|TypeError|SyntaxError|undefined/);
      expect(result.code, `run ${run}: ${result.stderr}`).toBe(0);
      const statuses = result.stdout.split('\n').filter((line) => line.startsWith('MESSAGE_STATUS_'));
      expect(statuses.at(-1), `run ${run}`).toBe('MESSAGE_STATUS_READ');
      expect(result.stdout).toMatch(/SESSION_STATUS_WORKING/);
      expect(result.stdout).toMatch(/QR code saved as \/\S+\/qr\.png/);
    }
  }, 240_000);

  it("streams the session with the README's buf curl command", async () => {
    const run = await bash(withPorts(`${helpers}\n${steps}\necho "SID=$SID"`));
    const sid = /SID=(\S+)/.exec(run.stdout)?.[1] ?? '';
    const token = await login(`http://localhost:${httpPort}`, 'me@acme.test', 'correct-horse-battery');
    const streamed = await bash(withPorts(watch), { SID: sid, TOKEN: token }, 8000);
    // A stream does not end by itself: the test stops it after a while and reads what came.
    expect(streamed.stdout).toContain(`"id": "${sid}"`);
    expect(streamed.stdout).toContain('SESSION_STATUS_WORKING');
  }, 180_000);

  it("reads back the walkthrough's message and events with the README's commands", async () => {
    const [reads = '', tail = ''] = shellBlocks(readmeSection('Reading messages and events'));
    const result = await bash(withPorts(`${helpers}\n${steps}\n${reads}\necho "SID=$SID"`));
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/"status":"MESSAGE_STATUS_READ"/);
    // No call was refused; the chats answer is a list (empty until messages fill the chat table).
    expect(result.stdout).not.toMatch(/"code":"/);
    expect(result.stdout).toMatch(/^\{("chats":\[.*\])?\}$/m);
    expect(result.stdout).toMatch(/^\d+ session\.status$/m);
    const token = await login(`http://localhost:${httpPort}`, 'me@acme.test', 'correct-horse-battery');
    // A stream does not end by itself: the test stops it after a while and reads what came.
    const streamed = await bash(withPorts(tail), { TOKEN: token }, 8000);
    expect(streamed.stdout).toContain('"type": "session.status"');
    expect(streamed.stdout).toContain('SESSION_STATUS_WORKING');
  }, 180_000);

  it('runs every read-only buf curl example of the README', async () => {
    // $TOKEN in the operator examples is the platform admin's; $KEY a tenant's API key.
    const tenantToken = await login(`http://localhost:${httpPort}`, 'me@acme.test', 'correct-horse-battery');
    const created = await fetch(`http://localhost:${httpPort}/switchboard.v1.ApiKeyService/CreateApiKey`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${tenantToken}` },
      body: JSON.stringify({ name: `readme-${Date.now()}`, role: 'ROLE_DEVELOPER' }),
    });
    const key = ((await created.json()) as { secret: string }).secret;
    const readOnly = bufCurlCommands().filter((command) => /--list-services|\/(List|Get|Check)\w*\b/.test(command));
    expect(readOnly.length).toBeGreaterThanOrEqual(3);
    for (const command of readOnly) {
      const result = await bash(withPorts(command), { TOKEN: adminToken, KEY: key }, 60_000);
      expect(result.code, `${command}\n${result.stderr}`).toBe(0);
      expect(result.stdout.trim().length, command).toBeGreaterThan(0);
    }
  }, 180_000);
});
