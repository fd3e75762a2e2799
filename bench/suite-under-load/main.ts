import { spawn, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { parseArgs, stripVTControlCharacters } from 'node:util';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * `npm run bench:suite-under-load [-- --runs 3 --burners N]`: runs the test
 * suite (`npm test`) several times in a row while other processes keep every
 * CPU busy, and prints each run's wall time and result. It is how timing-
 * sensitive tests are hunted: a test that only passes on an idle machine
 * fails here. The first figure is an idle run, the floor the loaded runs
 * compare to (skip it with --no-idle).
 */
const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    burners: { type: 'string', default: String(availableParallelism()) },
    'no-idle': { type: 'boolean', default: false },
  },
});
const runs = Number(values.runs);
/** Each run's whole output, for the failures' details. */
const LOG_DIR = join('.tmp', 'suite-under-load');
mkdirSync(LOG_DIR, { recursive: true });
const burners = Number(values.burners);

interface RunResult {
  label: string;
  seconds: number;
  passed: boolean;
  summary: string;
}

/** One `npm test`, its output kept (printed only when it fails). */
function runSuite(label: string): Promise<RunResult> {
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn('npm', ['test', '--silent'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('exit', (code) => {
      const plain = stripVTControlCharacters(output);
      const log = join(LOG_DIR, `${label.replace(/\s+/g, '-')}.log`);
      writeFileSync(log, plain);
      // vitest's closing summary: the last "Test Files" and "Tests" lines (a "Failed Tests" banner comes earlier).
      const last = (pattern: RegExp) => [...plain.matchAll(pattern)].at(-1)?.[1]?.trim();
      const summary = [last(/^\s*Test Files\s+(.*)$/gm), last(/^\s*Tests\s+(\d.*)$/gm)].filter(Boolean).join('; ');
      const failures = [...plain.matchAll(/^\s*(?:FAIL|×)\s+(.*)$/gm)].map((match) => match[1]);
      const passed = code === 0 && failures.length === 0;
      if (!passed)
        process.stdout.write(`--- ${label} failed (exit ${code}):\n  ${[...new Set(failures)].join('\n  ')}\n`);
      resolve({ label, seconds: (performance.now() - started) / 1000, passed, summary: `${summary} (${log})` });
    });
  });
}

/** A process spinning one CPU until killed. */
function burnCpu(): ChildProcess {
  return spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' });
}

const results: RunResult[] = [];
if (!values['no-idle']) {
  process.stdout.write('idle run (the floor)...\n');
  results.push(await runSuite('idle'));
}
const load = Array.from({ length: burners }, burnCpu);
try {
  for (let run = 1; run <= runs; run += 1) {
    process.stdout.write(`loaded run ${run}/${runs} (${burners} CPU burners)...\n`);
    results.push(await runSuite(`loaded ${run}`));
  }
} finally {
  for (const burner of load) burner.kill('SIGKILL');
}

const floor = results.find((result) => result.label === 'idle')?.seconds;
process.stdout.write(`\nsuite under load (${availableParallelism()} CPUs, ${burners} burners)\n`);
for (const result of results) {
  const ratio = floor ? ` (${(result.seconds / floor).toFixed(2)}× idle)` : '';
  process.stdout.write(
    `  ${result.label.padEnd(9)} ${result.seconds.toFixed(0).padStart(5)} s${ratio}  ${result.passed ? 'PASS' : 'FAIL'}  ${result.summary}\n`,
  );
}
process.exitCode = results.every((result) => result.passed) ? 0 : 1;
