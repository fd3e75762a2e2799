import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { lockDataDir } from '../../src/platform/db/data-dir-lock.js';
import { StartupError } from '../../lib/errors.js';

describe('embedded database folder lock', () => {
  const dirs: string[] = [];
  const fresh = () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-lock-'));
    dirs.push(dir);
    return dir;
  };
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it('takes a free folder and releases it', () => {
    const dir = fresh();
    const release = lockDataDir(dir);
    expect(readFileSync(join(dir, 'switchboard.lock'), 'utf8')).toBe(String(process.pid));
    release();
    expect(existsSync(join(dir, 'switchboard.lock'))).toBe(false);
  });

  it('refuses a folder held by another live process, naming it', async () => {
    const dir = fresh();
    const other = spawn('sleep', ['10']);
    try {
      writeFileSync(join(dir, 'switchboard.lock'), String(other.pid));
      expect(() => lockDataDir(dir)).toThrow(StartupError);
      expect(() => lockDataDir(dir)).toThrow(`in use by another Switchboard (pid ${other.pid})`);
    } finally {
      other.kill();
    }
  });

  it('takes over the lock of a process that is gone', async () => {
    const dir = fresh();
    const gone = spawn('true');
    await new Promise((resolve) => gone.once('exit', resolve));
    writeFileSync(join(dir, 'switchboard.lock'), String(gone.pid));
    const release = lockDataDir(dir);
    expect(readFileSync(join(dir, 'switchboard.lock'), 'utf8')).toBe(String(process.pid));
    release();
  });
});
