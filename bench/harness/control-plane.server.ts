import { createApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { serveApp } from './serve.js';

/**
 * The control plane under test: the production composition root
 * (createApp + start), configured only by the environment the bench
 * passes, alone in its process so /proc shows its RSS and CPU and nothing else.
 */
await serveApp(() => createApp(loadConfig(process.env)));
