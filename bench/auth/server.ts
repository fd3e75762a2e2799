/**
 * One control-plane process for bench/auth. With BENCH_FLOOR_PRINCIPAL set,
 * the credential check is replaced by a stand-in that returns that fixed
 * principal (the floor: identical RPCs, interceptors and database work,
 * minus authentication).
 */
import { createApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import type { Principal } from '../../src/identity/principal.js';
import { serveApp } from '../harness/serve.js';

const floorPrincipal = process.env.BENCH_FLOOR_PRINCIPAL
  ? (JSON.parse(process.env.BENCH_FLOOR_PRINCIPAL) as Principal)
  : undefined;

await serveApp(() =>
  createApp(loadConfig(process.env), {
    authenticator: floorPrincipal ? { authenticate: async () => floorPrincipal } : undefined,
  }),
);
