// Engines' timers come from the control plane's scheduler port, so both sides share one fake clock in tests.
export { ManualScheduler, systemScheduler, type Scheduler, type Timer } from '../../src/platform/scheduler.js';
