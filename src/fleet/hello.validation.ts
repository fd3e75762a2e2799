import { DomainError } from '../platform/errors.js';
import type { AgentHello } from './fleet.types.js';

const NAME = /^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$/;
const LABEL_KEY = /^[a-z0-9]([a-z0-9._/-]{0,61}[a-z0-9])?$/;
const MAX_CAPACITY = 100_000;
const MAX_LABELS = 32;

/**
 * Checks a Hello before anything is stored. Names follow DNS-label rules so
 * they work as hostnames, Kubernetes pod names and metric labels.
 */
export function validateHello(hello: AgentHello): void {
  if (!NAME.test(hello.workerName)) {
    throw DomainError.invalidArgument(
      'hello.worker_name',
      'must be 1-63 lowercase letters, digits, ".", "_" or "-", starting and ending with a letter or digit',
    );
  }
  if (hello.agentVersion.length === 0 || hello.agentVersion.length > 64) {
    throw DomainError.invalidArgument('hello.agent_version', 'must be 1-64 characters');
  }
  if (!Number.isInteger(hello.capacity) || hello.capacity < 1 || hello.capacity > MAX_CAPACITY) {
    throw DomainError.invalidArgument('hello.capacity', `must be from 1 to ${MAX_CAPACITY}`);
  }
  if (hello.supportedEngines.length === 0) {
    throw DomainError.invalidArgument('hello.supported_engines', 'must name at least one engine');
  }
  if (hello.instanceId.length < 8 || hello.instanceId.length > 64) {
    throw DomainError.invalidArgument('hello.instance_id', 'must be 8-64 characters');
  }
  const labels = Object.entries(hello.labels);
  if (labels.length > MAX_LABELS) {
    throw DomainError.invalidArgument('hello.labels', `at most ${MAX_LABELS} labels`);
  }
  for (const [key, value] of labels) {
    if (!LABEL_KEY.test(key)) throw DomainError.invalidArgument(`hello.labels[${key}]`, 'invalid label key');
    if (value.length > 63) throw DomainError.invalidArgument(`hello.labels[${key}]`, 'value longer than 63');
  }
}
