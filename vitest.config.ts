import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    // Real PostgreSQL and Redis: the machine's, or ones started for the run (see the file).
    globalSetup: ['tests/support/global-setup.ts'],
    // Integration tests start servers and real agent processes.
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Two cores: more parallel files only make timing-based tests flaky.
    maxWorkers: 2,
  },
});
