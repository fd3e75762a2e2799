/**
 * One control-plane process for bench/auth. With BENCH_AUTH_FLOOR=1 the
 * credential check is replaced by a stand-in that returns a fixed principal
 * (the floor: identical RPCs, interceptors and database work, minus
 * authentication). Prints "READY <httpPort>" when listening.
 */
import { createApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import type { Principal } from '../../src/identity/principal.js';

const floorPrincipal = process.env.BENCH_FLOOR_PRINCIPAL
  ? (JSON.parse(process.env.BENCH_FLOOR_PRINCIPAL) as Principal)
  : undefined;
const app = await createApp(loadConfig(process.env), {
  authenticator: floorPrincipal ? { authenticate: async () => floorPrincipal } : undefined,
});
const { httpPort } = await app.start();
process.stdout.write(`READY ${httpPort}\n`);
process.on('SIGTERM', () => {
  void app.close().then(() => process.exit(0));
});
