import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { User } from './identity/account.entity.js';
import { createApp, type App } from './app.js';
import { loadConfig } from './config.js';
import { StartupError } from '../lib/errors.js';
import { describeError } from './platform/loggable-error.js';

/**
 * Entry point. `npm start` runs the developer setup (`--dev`): control plane
 * on embedded defaults plus one local agent. `npm run serve` runs the control
 * plane alone, as in production.
 */
async function main(): Promise<void> {
  const dev = process.argv.includes('--dev');
  let app: App;
  try {
    const config = loadConfig(process.env, { dev });
    app = await createApp(config);
  } catch (error) {
    exitOnStartupError(error);
  }
  let urls: Awaited<ReturnType<App['start']>>;
  try {
    urls = await app.start();
  } catch (error) {
    await app.close();
    exitOnStartupError(error);
  }

  let agent: ChildProcess | undefined;
  if (dev) {
    const admin = await ensureDevAdmin(app);
    agent = startLocalAgent(app, urls.grpcPort, await localAgentJoinToken(app));
    printBanner(app, urls, admin);
  }

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    app.logger.info({ signal }, 'signal received');
    await stopChild(agent);
    await app.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

/** One line, whatever failed: a driver error's message quotes its statement (sealed keys, tokens). */
function exitOnStartupError(error: unknown): never {
  const line = error instanceof StartupError ? error.message : `could not start: ${describeError(error)}`;
  process.stderr.write(`switchboard: ${line}\n`);
  process.exit(1);
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

/** A single-use join token, so the local agent enrols like any other worker. */
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
function startLocalAgent(app: App, grpcPort: number, joinToken: string): ChildProcess {
  const agentMain = fileURLToPath(new URL('../agent/main.ts', import.meta.url));
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
        AGENT_STATE_DIR: join(app.config.dataDir, 'agent'),
      },
    },
  );
  child.on('exit', (code, signal) => {
    if (code === 0) app.logger.info('local agent stopped');
    else app.logger.warn({ code, signal }, 'local agent exited');
  });
  return child;
}

function stopChild(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

function printBanner(
  app: App,
  urls: { httpUrl: string; grpcUrl: string; grpcPort: number },
  admin: { email: string; password: string | undefined },
): void {
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

await main();
