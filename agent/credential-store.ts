import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * Keeps the worker credential on disk (mode 0600) so a restarted agent
 * reconnects as the same worker without a new join token. Written through a
 * temporary file and rename, so a crash never leaves half a credential.
 */
export class CredentialStore {
  constructor(private readonly path: string) {}

  load(): string | undefined {
    try {
      const value = readFileSync(this.path, 'utf8').trim();
      return value === '' ? undefined : value;
    } catch {
      return undefined;
    }
  }

  save(credential: string): void {
    mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
    const temporary = `${this.path}.tmp`;
    writeFileSync(temporary, `${credential}\n`, { mode: 0o600 });
    chmodSync(temporary, 0o600);
    renameSync(temporary, this.path);
  }

  clear(): void {
    rmSync(this.path, { force: true });
  }
}
