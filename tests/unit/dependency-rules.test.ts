import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cruise, type ICruiseResult, type IConfiguration } from 'dependency-cruiser';
import extractTSConfig from 'dependency-cruiser/config-utl/extract-ts-config';

// The rules in .dependency-cruiser.cjs, run on small trees laid out like this
// repository, so a rule that stops catching what it is for fails here rather
// than letting the code drift. Every tree is its own temp folder.

const require = createRequire(import.meta.url);
const config = require('../../.dependency-cruiser.cjs') as IConfiguration;

const TSCONFIG = {
  compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true },
  include: ['src', 'agent', 'lib', 'gen'],
};

/** Stand-ins for the npm packages the rules name: enough for the resolver to find them. */
const PACKAGES: Record<string, string> = {
  'node_modules/@connectrpc/connect/package.json': '{"name":"@connectrpc/connect","exports":{".":"./index.js"}}',
  'node_modules/@connectrpc/connect/index.js': 'export const Code = {};\n',
  'node_modules/@bufbuild/protobuf/package.json': '{"name":"@bufbuild/protobuf","exports":{".":"./index.js"}}',
  'node_modules/@bufbuild/protobuf/index.js': 'export function create() {}\n',
  'node_modules/ioredis/package.json': '{"name":"ioredis","exports":{".":"./index.js"}}',
  'node_modules/ioredis/index.js': 'export class Redis {}\n',
  'node_modules/pino/package.json': '{"name":"pino","exports":{".":"./index.js"}}',
  'node_modules/pino/index.js': 'export default function pino() {}\n',
};

const made: string[] = [];
afterAll(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

/** Writes `files` (path -> source) into a fresh tree and returns its violations as `rule: from → to`. */
async function violations(files: Record<string, string>): Promise<string[]> {
  const root = mkdtempSync(join(tmpdir(), 'sb-depcruise-'));
  made.push(root);
  for (const [path, text] of Object.entries({ ...PACKAGES, 'tsconfig.json': JSON.stringify(TSCONFIG), ...files })) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  const tsConfig = join(root, 'tsconfig.json');
  const roots = ['src', 'agent', 'lib'].filter((folder) => Object.keys(files).some((f) => f.startsWith(`${folder}/`)));
  const { output } = await cruise(
    roots,
    { validate: true, ruleSet: config, baseDir: root, tsConfig: { fileName: tsConfig } },
    {},
    { tsConfig: extractTSConfig(tsConfig) },
  );
  const result = output as ICruiseResult;
  return result.summary.violations.map((v) => `${v.rule.name}: ${v.from} → ${v.to}`).sort();
}

const uses = (...paths: string[]) => paths.map((p) => `import '${p}';\n`).join('') + 'export const x = 1;\n';

describe('dependency rules (.dependency-cruiser.cjs)', () => {
  it('no-circular: refuses two files that import each other', async () => {
    const found = await violations({
      'src/sessions/session.service.ts': uses('../messaging/message.service.js'),
      'src/messaging/message.service.ts': uses('../sessions/session.service.js'),
    });
    // One violation per cycle, named from whichever file the cruise reached first.
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(/^no-circular: /);
    for (const file of ['src/messaging/message.service.ts', 'src/sessions/session.service.ts']) {
      expect(found[0]).toContain(file);
    }
  });

  it('agent-ships-alone: refuses the agent importing the control plane', async () => {
    expect(
      await violations({
        'agent/agent.ts': uses('../src/fleet/worker.state.js'),
        'src/fleet/worker.state.ts': uses(),
      }),
    ).toEqual(['agent-ships-alone: agent/agent.ts → src/fleet/worker.state.ts']);
  });

  it('lib-is-the-kernel: refuses lib/ importing src/, agent/ or gen/', async () => {
    expect(
      await violations({
        'lib/clock.ts': uses('../src/config.js', '../agent/config.js', '../gen/switchboard/v1/worker_pb.js'),
        'src/config.ts': uses(),
        'agent/config.ts': uses(),
        'gen/switchboard/v1/worker_pb.ts': uses(),
      }),
    ).toEqual([
      'lib-is-the-kernel: lib/clock.ts → agent/config.ts',
      'lib-is-the-kernel: lib/clock.ts → gen/switchboard/v1/worker_pb.ts',
      'lib-is-the-kernel: lib/clock.ts → src/config.ts',
    ]);
  });

  it('platform-knows-no-capability: refuses src/platform/ importing a capability or the root config', async () => {
    expect(
      await violations({
        'src/platform/db/entities.ts': uses('../../fleet/worker.entity.js', '../../config.js', '../resources.js'),
        'src/platform/resources.ts': uses(),
        'src/fleet/worker.entity.ts': uses(),
        'src/config.ts': uses(),
      }),
    ).toEqual([
      'platform-knows-no-capability: src/platform/db/entities.ts → src/config.ts',
      'platform-knows-no-capability: src/platform/db/entities.ts → src/fleet/worker.entity.ts',
    ]);
  });

  it('protocol-at-the-edges: refuses a service importing gen/, Connect or protobuf', async () => {
    expect(
      await violations({
        'src/fleet/fleet.service.ts': uses(
          '../../gen/switchboard/v1/fleet_pb.js',
          '@connectrpc/connect',
          '@bufbuild/protobuf',
        ),
        'gen/switchboard/v1/fleet_pb.ts': uses(),
      }),
    ).toEqual([
      'protocol-at-the-edges: src/fleet/fleet.service.ts → gen/switchboard/v1/fleet_pb.ts',
      'protocol-at-the-edges: src/fleet/fleet.service.ts → node_modules/@bufbuild/protobuf/index.js',
      'protocol-at-the-edges: src/fleet/fleet.service.ts → node_modules/@connectrpc/connect/index.js',
    ]);
  });

  it('protocol-at-the-edges: lets handlers, src/transport/ and the composition root speak protobuf', async () => {
    const protocol = ['../../gen/switchboard/v1/fleet_pb.js', '@connectrpc/connect', '@bufbuild/protobuf'];
    expect(
      await violations({
        'src/fleet/worker.handler.ts': uses(...protocol),
        'src/identity/identity-mapping.handler.ts': uses(...protocol),
        'src/transport/interceptors.ts': uses(...protocol),
        'src/app.ts': uses('../gen/switchboard/v1/fleet_pb.js', '@connectrpc/connect'),
        'src/main.ts': uses('./app.js'),
        'gen/switchboard/v1/fleet_pb.ts': uses(),
      }),
    ).toEqual([]);
  });

  it('scheduling-no-node-io: refuses the scheduler touching files, network or processes', async () => {
    expect(
      await violations({
        'src/scheduling/placement.ts': uses('node:fs', 'node:fs/promises', 'node:net', 'node:child_process'),
      }),
    ).toEqual([
      'scheduling-no-node-io: src/scheduling/placement.ts → child_process',
      'scheduling-no-node-io: src/scheduling/placement.ts → fs',
      'scheduling-no-node-io: src/scheduling/placement.ts → fs/promises',
      'scheduling-no-node-io: src/scheduling/placement.ts → net',
    ]);
  });

  it('scheduling-is-pure: refuses the scheduler importing other capabilities or I/O packages', async () => {
    expect(
      await violations({
        'src/scheduling/scheduler.ts': uses('../fleet/worker.repository.js', '../platform/resources.js', 'ioredis'),
        'src/fleet/worker.repository.ts': uses(),
        'src/platform/resources.ts': uses(),
      }),
    ).toEqual([
      'scheduling-is-pure: src/scheduling/scheduler.ts → node_modules/ioredis/index.js',
      'scheduling-is-pure: src/scheduling/scheduler.ts → src/fleet/worker.repository.ts',
      'scheduling-is-pure: src/scheduling/scheduler.ts → src/platform/resources.ts',
    ]);
  });

  it('passes a tree that keeps every rule', async () => {
    expect(
      await violations({
        'src/main.ts': uses('./app.js'),
        'src/app.ts': uses('./entities.js', './fleet/worker.handler.js', './platform/db/database.js'),
        'src/entities.ts': uses('./fleet/fleet.entities.js'),
        'src/fleet/fleet.entities.ts': uses('./worker.entity.js'),
        'src/fleet/worker.entity.ts': uses(),
        'src/fleet/worker.handler.ts': uses(
          '../../gen/switchboard/v1/worker_pb.js',
          '@connectrpc/connect',
          './fleet.service.js',
        ),
        'src/fleet/fleet.service.ts': uses(
          '../../lib/clock.js',
          '../platform/db/database.js',
          '../scheduling/scheduler.js',
        ),
        'src/platform/db/database.ts': uses('../../../lib/logger.js', 'node:fs'),
        'src/scheduling/scheduler.ts': uses('./placement.js', '../../lib/random.js', 'node:crypto'),
        'src/scheduling/placement.ts': uses(),
        'agent/agent.ts': uses('../lib/clock.js', '../gen/switchboard/v1/worker_pb.js', '@connectrpc/connect'),
        'lib/clock.ts': uses(),
        'lib/logger.ts': uses('pino'),
        'lib/random.ts': uses(),
        'gen/switchboard/v1/worker_pb.ts': uses('@bufbuild/protobuf'),
      }),
    ).toEqual([]);
  });
});
