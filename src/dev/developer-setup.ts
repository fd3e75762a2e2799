import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { App } from '../app.js';
import { User } from '../identity/account.entity.js';
import { LocalAgentSupervisor, type AgentExit, type ChildAgent } from './local-agent-supervisor.js';

/** What `app.start()` reports. */
type Urls = Awaited<ReturnType<App['start']>>;

/**
 * The developer setup (`npm start`) on top of a started control plane: a
 * first platform admin, one supervised local agent, and a banner saying
 * where everything is. Returns how to stop the agent.
 */
export async function startDeveloperSetup(app: App, urls: Urls): Promise<{ stop: () => Promise<void> }> {
  const admin = await ensureDevAdmin(app);
  const supervisor = new LocalAgentSupervisor({
    spawn: (joinToken) => spawnLocalAgent(app, urls.grpcPort, joinToken),
    joinToken: () => localAgentJoinToken(app),
    clock: app.clock,
    scheduler: app.scheduler,
    random: app.random,
    logger: app.logger.child({ component: 'local-agent' }),
  });
  await supervisor.start();
  printBanner(app, urls, admin);
  return { stop: () => supervisor.stop() };
}

const DEV_ADMIN_EMAIL = 'admin@switchboard.local';

/**
 * The developer setup's first platform admin: created once with a random
 * password that is printed once. Later starts only name it.
 */
async function ensureDevAdmin(app: App): Promise<{ email: string; password: string | undefined }> {
  const em = app.database.orm.em.fork();
  if ((await em.count(User, { platformAdmin: true })) > 0) {
    const existing = await em.findOne(User, { platformAdmin: true }, { orderBy: { createdAt: 'asc' } });
    return { email: existing?.email ?? DEV_ADMIN_EMAIL, password: undefined };
  }
  const password = randomBytes(12).toString('base64url');
  await app.identity.auth.ensurePlatformAdmin(em, { email: DEV_ADMIN_EMAIL, password });
  return { email: DEV_ADMIN_EMAIL, password };
}

/**
 * A single-use join token, so the local agent enrols like any other worker.
 * Each start gets its own: an agent that still holds a valid credential
 * ignores it, one that was removed from the fleet enrols again with it.
 */
async function localAgentJoinToken(app: App): Promise<string> {
  const { token } = await app.identity.joinTokens.create(
    app.database.orm.em.fork(),
    undefined,
    { description: 'local agent of the developer setup (npm start)', ttlMs: 10 * 60_000, maxUses: 1 },
    { ip: 'local', userAgent: 'npm start' },
  );
  return token;
}

/** The developer setup's worker: a real agent process, so it behaves like any other worker. */
function spawnLocalAgent(app: App, grpcPort: number, joinToken: string): ChildAgent {
  const agentMain = fileURLToPath(new URL('../../agent/main.ts', import.meta.url));
  const host = app.config.host === '0.0.0.0' ? '127.0.0.1' : app.config.host;
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      agentMain,
      '--control-plane',
      `${host}:${grpcPort}`,
      '--name',
      'local-agent',
      '--labels',
      'zone=local',
      // Both engines, so a real phone links from the default setup too (where WhatsApp is reachable).
      '--engines',
      'sandbox,baileys',
    ],
    {
      // The IPC channel closes when this process dies, however it dies; the
      // agent stops then instead of outliving us.
      stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
      env: {
        ...process.env,
        AGENT_LOG_FORMAT: process.env.AGENT_LOG_FORMAT ?? app.config.logFormat,
        JOIN_TOKEN: joinToken,
        // Beside this database's other local files: another database never sees this worker's credential.
        AGENT_STATE_DIR: join(app.localDir, 'agent'),
      },
    },
  );
  const exited = new Promise<AgentExit>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  return {
    exited,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        // SIGINT stops without draining: the whole system is going down.
        const kill = app.scheduler.schedule(5000, () => child.kill('SIGKILL'));
        child.kill('SIGINT');
        await exited;
        kill.cancel();
      }
    },
  };
}

function printBanner(app: App, urls: Urls, admin: { email: string; password: string | undefined }): void {
  const grpcHost = urls.grpcUrl.replace(/^http:\/\//, '');
  const password = admin.password ?? '<password>';
  const login = `curl -s -X POST -H 'content-type: application/json' ${urls.httpUrl}/switchboard.v1.AuthService/Login -d '{"email":"${admin.email}","password":"${password}"}'`;
  const lines = [
    '',
    'Switchboard is running (developer setup)',
    `  Connect/HTTP  ${urls.httpUrl}`,
    `  gRPC (h2c)    ${urls.grpcUrl}`,
    `  database      ${app.database.kind === 'pglite' ? `embedded PostgreSQL in ${app.database.location}` : app.database.location}`,
    `  coordination  ${app.store.kind === 'memory' ? 'in-process (single replica)' : 'Redis'}`,
    `  local files   ${app.localDir} (development keys, the local agent's credential)`,
    `  worker        local-agent (sandbox and Baileys engines), restarted by this process if it exits;`,
    `                as the only worker, draining it stops its sessions until UncordonWorker or another agent joins`,
    '',
    admin.password
      ? `Platform admin (shown once, keep it): ${admin.email} / ${admin.password}`
      : `Platform admin: ${admin.email} (password shown at first start; reset: npm run admin:create -- --email ${admin.email})`,
    '',
    'Try it:',
    `  TOKEN=$(${login} | node -pe 'JSON.parse(require("fs").readFileSync(0, "utf8")).tokens.accessToken')`,
    `  curl -s -X POST -H 'content-type: application/json' -H "authorization: Bearer $TOKEN" ${urls.httpUrl}/switchboard.v1.AdminService/ListWorkers -d '{}'`,
    `  npx buf curl --http2-prior-knowledge --protocol grpc --list-services ${urls.grpcUrl}`,
    `  (or, with grpcurl installed: grpcurl -plaintext ${grpcHost} list)`,
    '',
    'Link a WhatsApp session in the sandbox and send a message: README.md, "A tenant\'s first five minutes".',
    '',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}
