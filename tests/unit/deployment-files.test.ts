import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { posix, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { loadAgentConfig } from '../../agent/config.js';

// The Dockerfile, docker-compose.yml and .env.example are read as text and
// checked against the code they deploy, so a renamed variable, a moved entry
// point or a dependency the image leaves out fails here, not at deploy time.

const root = fileURLToPath(new URL('../../', import.meta.url));
const read = (path: string) => readFileSync(resolve(root, path), 'utf8');

// ---------- .env.example ----------

interface ExampleVariable {
  value: string;
  /** Commented out: documented, but its default is computed, so it is not set. */
  commented: boolean;
}

function parseEnvExample(text: string): Map<string, ExampleVariable> {
  const variables = new Map<string, ExampleVariable>();
  for (const line of text.split('\n')) {
    const match = /^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (!match) continue;
    const [, hash, name = '', value = ''] = match;
    if (variables.has(name)) throw new Error(`.env.example names ${name} twice`);
    variables.set(name, { value, commented: hash !== undefined });
  }
  return variables;
}

/** The variables .env.example sets, as a process environment. */
function exampleEnv(): Record<string, string> {
  return Object.fromEntries(
    [...parseEnvExample(read('.env.example'))].filter(([, v]) => !v.commented).map(([name, v]) => [name, v.value]),
  );
}

/** Variable names a config module reads: the upper-case keys of its schema object. */
function variablesIn(path: string): Set<string> {
  return new Set([...read(path).matchAll(/^\s+([A-Z][A-Z0-9_]+):/gm)].map((m) => m[1] ?? ''));
}

// Capabilities keep their own settings in src/<capability>/*.config.ts, spread into src/config.ts's schema.
const controlPlaneVariables = new Set([
  ...variablesIn('src/config.ts'),
  ...readdirSync(resolve(root, 'src'), { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.config.ts'))
    .flatMap((file) => [...variablesIn(`src/${file}`)]),
]);
const agentVariables = variablesIn('agent/config.ts');

/** loadConfig() minus the replica id, which is random per process. */
function controlPlaneSettings(env: Record<string, string>, dev: boolean) {
  const { replicaId: _random, ...rest } = loadConfig(env, { dev });
  return rest;
}

// ---------- Dockerfile ----------

interface Instruction {
  keyword: string;
  args: string;
}

interface Stage {
  base: string;
  name: string | undefined;
  instructions: Instruction[];
}

/** Splits a Dockerfile into stages of instructions (continuations joined, comments dropped, global ARGs applied to FROM). */
function parseDockerfile(text: string): Stage[] {
  const logical: string[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('#') || (line === '' && pending === '')) continue;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    logical.push(`${pending}${line}`.trim());
    pending = '';
  }
  const globalArgs = new Map<string, string>();
  const stages: Stage[] = [];
  for (const line of logical) {
    if (line === '') continue;
    const space = line.indexOf(' ');
    const keyword = (space < 0 ? line : line.slice(0, space)).toUpperCase();
    const args = space < 0 ? '' : line.slice(space + 1).trim();
    if (keyword === 'FROM') {
      const [image = '', as, name] = args.replace(/^--platform=\S+\s+/, '').split(/\s+/);
      const base = image.replace(
        /\$\{(\w+)\}|\$(\w+)/g,
        (_, a?: string, b?: string) => globalArgs.get(a ?? b ?? '') ?? '',
      );
      stages.push({ base, name: as?.toUpperCase() === 'AS' ? name : undefined, instructions: [] });
    } else if (stages.length === 0 && keyword === 'ARG') {
      const [name = '', value = ''] = args.split('=');
      globalArgs.set(name, value);
    } else {
      stages.at(-1)?.instructions.push({ keyword, args });
    }
  }
  return stages;
}

const stages = parseDockerfile(read('Dockerfile'));
const runtime = stages.at(-1);
const runtimeInstructions = (keyword: string) => (runtime?.instructions ?? []).filter((i) => i.keyword === keyword);

/** Variables the image sets (ENV NAME=value ...), which every container starts with. */
function imageEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const { args } of runtimeInstructions('ENV')) {
    for (const pair of args.split(/\s+/)) {
      const at = pair.indexOf('=');
      if (at > 0) env[pair.slice(0, at)] = pair.slice(at + 1).replace(/^"(.*)"$/, '$1');
    }
  }
  return env;
}

/** Exec-form arguments, e.g. CMD ["node", "x.ts"]; shell form returns undefined. */
function execForm(args: string): string[] | undefined {
  if (!args.startsWith('[')) return undefined;
  return JSON.parse(args) as string[];
}

/** The image's working directory at the end of the final stage. */
function runtimeWorkdir(): string {
  let dir = '/';
  for (const { args } of runtimeInstructions('WORKDIR')) dir = posix.resolve(dir, args);
  return dir;
}

/** Files copied from the build context in the final stage: [source in the repo, path in the image]. */
function copiedFromContext(): [string, string][] {
  const copies: [string, string][] = [];
  for (const { args } of runtimeInstructions('COPY')) {
    const words = args.split(/\s+/);
    if (words.some((w) => w.startsWith('--from='))) continue;
    const paths = words.filter((w) => !w.startsWith('--'));
    const dest = posix.resolve(runtimeWorkdir(), paths.at(-1) ?? '');
    const sources = paths.slice(0, -1);
    const intoDirectory = sources.length > 1 || (paths.at(-1) ?? '').endsWith('/');
    for (const source of sources)
      copies.push([posix.normalize(source), intoDirectory ? posix.join(dest, posix.basename(source)) : dest]);
  }
  return copies;
}

/** Whether a repository file ends up in the image (at the same path relative to WORKDIR). */
function inImage(repoPath: string): boolean {
  return copiedFromContext().some(([source]) => repoPath === source || repoPath.startsWith(`${source}/`));
}

/** The script a command runs, e.g. ["node", "--import", "tsx", "src/main.ts"] -> "src/main.ts". */
function entryFile(command: readonly string[]): string | undefined {
  return command
    .slice(1)
    .find((arg, i, args) => !arg.startsWith('-') && args[i - 1] !== '--import' && /\.[cm]?[jt]s$/.test(arg));
}

// ---------- run-time import graph ----------

/** Module specifiers a file loads when it runs (type-only imports are erased, so they are left out). */
function runtimeSpecifiers(path: string): string[] {
  const source = ts.createSourceFile(path, read(path), ts.ScriptTarget.Latest, true);
  const found: string[] = [];
  const visit = (node: ts.Node) => {
    if (ts.isImportDeclaration(node) && !node.importClause?.isTypeOnly && ts.isStringLiteral(node.moduleSpecifier)) {
      found.push(node.moduleSpecifier.text);
    } else if (
      ts.isExportDeclaration(node) &&
      !node.isTypeOnly &&
      node.moduleSpecifier &&
      ts.isStringLiteral(node.moduleSpecifier)
    ) {
      found.push(node.moduleSpecifier.text);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const [first] = node.arguments;
      if (first && ts.isStringLiteralLike(first)) found.push(first.text);
    } else if (ts.isNewExpression(node) && node.expression.getText(source) === 'URL') {
      // new URL('../agent/main.ts', import.meta.url): a file loaded by path at run time.
      const [first, second] = node.arguments ?? [];
      if (first && ts.isStringLiteralLike(first) && second?.getText(source) === 'import.meta.url')
        found.push(first.text);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** Resolves a relative specifier the way tsx does (a .js specifier may name a .ts file). */
function resolveRelative(from: string, specifier: string): string {
  const base = posix.join(posix.dirname(from), specifier);
  const candidates = [
    base,
    base.replace(/\.js$/, '.ts'),
    base.replace(/\.mjs$/, '.mts'),
    `${base}.ts`,
    `${base}/index.ts`,
  ];
  const hit = candidates.find((candidate) => existsSync(resolve(root, candidate)) && /\.[cm]?[jt]s$/.test(candidate));
  if (!hit) throw new Error(`${from} imports ${specifier}, which does not exist`);
  return hit;
}

/** Every repository file and package reachable from the entry points when they run. */
function runtimeGraph(entries: readonly string[]): { files: Set<string>; packages: Map<string, string> } {
  const files = new Set<string>();
  const packages = new Map<string, string>(); // package -> first file importing it
  const queue = [...entries];
  while (queue.length > 0) {
    const file = queue.pop() ?? '';
    if (files.has(file)) continue;
    files.add(file);
    for (const specifier of runtimeSpecifiers(file)) {
      if (specifier.startsWith('.')) queue.push(resolveRelative(file, specifier));
      else if (!specifier.startsWith('node:') && !builtinModules.includes(specifier)) {
        const parts = specifier.split('/');
        const name = specifier.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] ?? specifier);
        if (!packages.has(name)) packages.set(name, file);
      }
    }
  }
  return { files, packages };
}

// ---------- docker-compose.yml ----------

interface ComposeService {
  image?: string;
  build?: string | { context?: string; dockerfile?: string };
  command?: string | string[];
  environment?: Record<string, string | number | boolean | null> | string[];
  ports?: (string | number | { target: number; published?: string | number })[];
  depends_on?: string[] | Record<string, { condition?: string }>;
  healthcheck?: { test?: string | string[]; disable?: boolean };
  stop_grace_period?: string;
}

const compose = parse(read('docker-compose.yml')) as { services?: Record<string, ComposeService> };
const services = compose.services ?? {};

function service(name: string): ComposeService {
  const found = services[name];
  if (!found) throw new Error(`docker-compose.yml has no ${name} service`);
  return found;
}

function environmentOf(name: string): Record<string, string> {
  const env = service(name).environment ?? {};
  if (Array.isArray(env)) {
    return Object.fromEntries(env.map((entry) => [entry.split('=')[0] ?? '', entry.slice(entry.indexOf('=') + 1)]));
  }
  return Object.fromEntries(Object.entries(env).map(([key, value]) => [key, value === null ? '' : String(value)]));
}

/** Container-side ports a service publishes. */
function publishedTargets(name: string): number[] {
  return (service(name).ports ?? []).map((port) => {
    if (typeof port === 'object') return port.target;
    const text = String(port).replace(/\/(tcp|udp)$/, '');
    return Number(text.split(':').at(-1));
  });
}

/** The command a service runs: its own, or the image's default CMD. */
function commandOf(name: string): string[] {
  const command = service(name).command;
  if (Array.isArray(command)) return command;
  if (typeof command === 'string') return command.split(/\s+/);
  return execForm(runtimeInstructions('CMD').at(-1)?.args ?? '') ?? [];
}

/** Docker duration ("1m30s", "500ms") in milliseconds; compose's default stop grace period is 10s. */
function durationMs(text: string | undefined): number {
  if (text === undefined) return 10_000;
  const units: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 0.001 };
  let total = 0;
  for (const [, amount, unit] of text.matchAll(/(\d+(?:\.\d+)?)(h|ms|us|m|s)/g))
    total += Number(amount) * (units[unit ?? ''] ?? 0);
  return total;
}

const healthTest = (check: ComposeService['healthcheck']) => [check?.test ?? []].flat().join(' ');

// ---------- tests ----------

describe('.env.example', () => {
  const documented = parseEnvExample(read('.env.example'));

  it('documents every variable the control plane and the agent read, and no others', () => {
    const used = new Set([...controlPlaneVariables, ...agentVariables]);
    expect(used.size).toBeGreaterThan(10); // the extraction from source still finds the schemas
    expect([...documented.keys()].sort()).toEqual([...used].sort());
  });

  it('gives each variable one comment line', () => {
    const lines = read('.env.example').split('\n');
    for (const name of documented.keys()) {
      const at = lines.findIndex((line) => new RegExp(`^(#\\s*)?${name}=`).test(line));
      expect(lines[at - 1], `comment above ${name}`).toMatch(/^# \S/);
      expect(lines[at - 1], `comment above ${name}`).not.toMatch(/^#\s*[A-Z][A-Z0-9_]*=/);
    }
  });

  it('is a valid configuration whose values are exactly the built-in defaults', () => {
    const env = exampleEnv();
    for (const dev of [false, true]) expect(controlPlaneSettings(env, dev)).toEqual(controlPlaneSettings({}, dev));
    expect(loadAgentConfig([], env)).toEqual(loadAgentConfig([], {}));
  });
});

describe('docker-compose.yml', () => {
  it('runs postgres, redis, the control plane and an agent', () => {
    expect(Object.keys(services).sort()).toEqual(['agent', 'control-plane', 'postgres', 'redis']);
    expect(service('postgres').image).toMatch(/^postgres:16\b/);
    expect(service('redis').image).toMatch(/^redis:7\b/);
  });

  it('builds the control plane and the agent from this repository into one image', () => {
    for (const name of ['control-plane', 'agent']) {
      const build = service(name).build;
      const context = typeof build === 'string' ? build : build?.context;
      expect(context, `${name} build context`).toBe('.');
      expect(typeof build === 'object' ? (build.dockerfile ?? 'Dockerfile') : 'Dockerfile').toBe('Dockerfile');
    }
    expect(service('agent').image).toBe(service('control-plane').image);
  });

  it('passes each process only variables that its own config reads', () => {
    const controlPlane = Object.keys(environmentOf('control-plane'));
    const agent = Object.keys(environmentOf('agent'));
    expect(controlPlane.filter((name) => !controlPlaneVariables.has(name))).toEqual([]);
    expect(agent.filter((name) => !agentVariables.has(name))).toEqual([]);
    const documented = parseEnvExample(read('.env.example'));
    expect([...controlPlane, ...agent].filter((name) => !documented.has(name))).toEqual([]);
  });

  it('gives values the config loaders accept', () => {
    expect(() => loadConfig(environmentOf('control-plane'))).not.toThrow();
    const command = commandOf('agent');
    const flags = command.slice(command.indexOf(entryFile(command) ?? '') + 1);
    expect(() => loadAgentConfig(flags, environmentOf('agent'))).not.toThrow();
  });

  it('gives the control plane every variable that NODE_ENV=production (set by the image) requires', () => {
    expect(imageEnv().NODE_ENV).toBe('production');
    expect(() => loadConfig({ ...imageEnv(), ...environmentOf('control-plane') })).not.toThrow();
  });

  it('points the control plane at postgres and redis, and the agent at the control plane gRPC port', () => {
    const config = loadConfig(environmentOf('control-plane'));
    expect(new URL(config.databaseUrl ?? 'missing:').hostname).toBe('postgres');
    expect(new URL(config.redisUrl ?? 'missing:').hostname).toBe('redis');
    const agent = loadAgentConfig([], environmentOf('agent'));
    expect(agent.controlPlaneAddress).toBe(`control-plane:${config.grpcPort}`);
  });

  it('publishes the HTTP and gRPC ports the control plane listens on, on all interfaces', () => {
    const config = loadConfig(environmentOf('control-plane'));
    expect(config.host).toBe('0.0.0.0');
    expect(publishedTargets('control-plane')).toEqual(expect.arrayContaining([config.httpPort, config.grpcPort]));
    expect([config.httpPort, config.grpcPort]).toEqual([8080, 50051]);
  });

  it('starts each service only after what it needs is healthy', () => {
    expect(service('control-plane').depends_on).toEqual({
      postgres: { condition: 'service_healthy' },
      redis: { condition: 'service_healthy' },
    });
    expect(service('agent').depends_on).toEqual({ 'control-plane': { condition: 'service_healthy' } });
    expect(healthTest(service('postgres').healthcheck)).toContain('pg_isready');
    expect(healthTest(service('redis').healthcheck)).toContain('redis-cli');
  });

  it('health-checks the control plane on its own HTTP port', () => {
    const { httpPort } = loadConfig(environmentOf('control-plane'));
    expect(healthTest(service('control-plane').healthcheck)).toMatch(new RegExp(`:${httpPort}/(healthz|readyz)\\b`));
  });

  it('does not run the control-plane probe in the agent, which serves no HTTP', () => {
    const check = service('agent').healthcheck;
    expect(check?.disable === true || (check?.test !== undefined && !/healthz|readyz/.test(healthTest(check)))).toBe(
      true,
    );
  });

  it('lets the control plane finish a graceful shutdown before Docker kills it', () => {
    const { shutdownTimeoutMs } = loadConfig(environmentOf('control-plane'));
    expect(durationMs(service('control-plane').stop_grace_period)).toBeGreaterThan(shutdownTimeoutMs);
  });

  it('runs entry points that exist and are in the image', () => {
    expect(entryFile(commandOf('control-plane'))).toBe('src/main.ts');
    expect(entryFile(commandOf('agent'))).toBe('agent/main.ts');
    for (const name of ['control-plane', 'agent']) {
      const file = entryFile(commandOf(name)) ?? '';
      expect(existsSync(resolve(root, file)), file).toBe(true);
      expect(inImage(file), `${file} copied into the image`).toBe(true);
    }
  });
});

describe('Dockerfile', () => {
  it('builds in stages on one base image, so native addons match the runtime', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const install = stages.find((stage) =>
      stage.instructions.some((i) => i.keyword === 'RUN' && /\bnpm ci\b/.test(i.args)),
    );
    expect(install, 'a stage runs npm ci').toBeDefined();
    expect(install).not.toBe(runtime);
    expect(runtime?.base).toBe(install?.base);
    const major = Number(/^node:(\d+)/.exec(runtime?.base ?? '')?.[1]);
    const engines = (JSON.parse(read('package.json')) as { engines: { node: string } }).engines.node;
    expect(major).toBeGreaterThanOrEqual(Number(/\d+/.exec(engines)?.[0]));
  });

  it('installs production dependencies with the toolchain for native addons, and copies them into the runtime', () => {
    const install = stages.find((stage) =>
      stage.instructions.some((i) => i.keyword === 'RUN' && /\bnpm ci\b/.test(i.args)),
    );
    const runs = (install?.instructions ?? []).filter((i) => i.keyword === 'RUN').map((i) => i.args);
    expect(runs.find((run) => /\bnpm ci\b/.test(run))).toMatch(/--omit=dev\b/);
    for (const tool of ['python3', 'make', 'g\\+\\+'])
      expect(runs.join('\n')).toMatch(new RegExp(`apt-get install .*\\b${tool}(\\s|$)`));
    const fromInstall = runtimeInstructions('COPY').filter((i) => i.args.includes(`--from=${install?.name ?? '?'}`));
    expect(fromInstall.map((i) => i.args).join('\n')).toMatch(/node_modules/);
  });

  it('runs as a non-root user', () => {
    const user = runtimeInstructions('USER').at(-1)?.args.split(':')[0];
    expect(user).toBeDefined();
    expect(['root', '0']).not.toContain(user);
  });

  it('exposes the HTTP and gRPC ports', () => {
    const exposed = runtimeInstructions('EXPOSE').flatMap((i) =>
      i.args.split(/\s+/).map((p) => Number(p.split('/')[0])),
    );
    expect(exposed).toEqual(expect.arrayContaining([8080, 50051]));
  });

  it('health-checks /healthz with node, which the slim image has (curl it has not)', () => {
    const check = runtimeInstructions('HEALTHCHECK').at(-1)?.args ?? '';
    const command = execForm(check.slice(check.indexOf('CMD') + 3).trim());
    expect(command?.[0]).toBe('node');
    expect(command?.join(' ')).toMatch(/\/healthz\b/);
    expect(command?.join(' ')).toMatch(/HTTP_PORT \|\| 8080/);
  });

  it('runs the control plane by default, through tsx, in exec form so node receives SIGTERM', () => {
    const command = execForm(runtimeInstructions('CMD').at(-1)?.args ?? '');
    expect(command).toEqual(['node', '--import', 'tsx', 'src/main.ts']);
    expect(runtimeInstructions('ENTRYPOINT')).toEqual([]);
  });

  it('copies sources to the same paths as in the repository, so relative imports resolve', () => {
    const workdir = runtimeWorkdir();
    for (const [source, dest] of copiedFromContext()) expect(posix.relative(workdir, dest), source).toBe(source);
  });

  it('contains every file the control plane and the agent load at run time', () => {
    const { files } = runtimeGraph(['src/main.ts', 'agent/main.ts']);
    expect(files.size).toBeGreaterThan(10);
    expect([...files].filter((file) => !inImage(file))).toEqual([]);
  });

  it('installs every package loaded at run time as a production dependency', () => {
    const { packages } = runtimeGraph(['src/main.ts', 'agent/main.ts']);
    packages.set('tsx', 'Dockerfile CMD (--import tsx)');
    const { dependencies = {} } = JSON.parse(read('package.json')) as { dependencies?: Record<string, string> };
    const missing = [...packages]
      .filter(([name]) => !(name in dependencies))
      .map(([name, by]) => `${name} (imported by ${by})`);
    expect(missing).toEqual([]);
  });

  it('keeps local state and secrets out of the build context, but not what the image copies', () => {
    const patterns = read('.dockerignore')
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '' && !line.startsWith('#'));
    for (const required of ['node_modules', '.env', '.git', 'data']) expect(patterns).toContain(required);
    const copied = copiedFromContext().map(([source]) => source);
    expect(copied.filter((source) => patterns.includes(source) && !patterns.includes(`!${source}`))).toEqual([]);
    for (const source of copied) expect(existsSync(resolve(root, source)), source).toBe(true);
  });
});

describe('package.json scripts', () => {
  const scripts = () => (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts;

  // The tsx CLI runs the program in a child process and relays signals to it:
  // a child that does not confirm a signal within 30 ms (busy shutting down,
  // or simply not scheduled yet on a loaded machine) is killed with SIGKILL,
  // so Ctrl-C sometimes skipped the graceful shutdown. `exec` replaces npm's
  // shell, which a terminal's SIGINT would otherwise kill (npm then exits 130
  // while node is still shutting down).
  it.each(['start', 'serve', 'agent'])(
    'runs the long-lived `%s` as node itself (exec, --import tsx), so it gets signals and shuts down gracefully',
    (name) => {
      expect(scripts()[name]).toMatch(/^exec node --import tsx (src|agent)\/main\.ts( --dev)?$/);
    },
  );
});
