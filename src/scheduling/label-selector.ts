import { DomainError } from '../../lib/errors.js';

/** One clause of a label selector. */
export type LabelRequirement =
  { key: string; op: 'equals' | 'not-equals'; value: string } | { key: string; op: 'exists' | 'not-exists' };

/**
 * Parses a Kubernetes-style equality selector: "region=eu,zone!=eu-1c,gpu,!spot".
 * Empty means everything.
 */
export function parseLabelSelector(selector: string): LabelRequirement[] {
  const requirements: LabelRequirement[] = [];
  for (const raw of selector
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean)) {
    const match = /^(!?)([A-Za-z0-9._/-]+)(?:\s*(!=|==|=)\s*([A-Za-z0-9._-]*))?$/.exec(raw);
    if (!match) throw DomainError.invalidArgument('label_selector', `cannot parse ${JSON.stringify(raw)}`);
    const [, negation, key = '', op, value = ''] = match;
    if (op && negation) throw DomainError.invalidArgument('label_selector', `cannot parse ${JSON.stringify(raw)}`);
    if (!op) requirements.push({ key, op: negation ? 'not-exists' : 'exists' });
    else requirements.push({ key, op: op === '!=' ? 'not-equals' : 'equals', value });
  }
  return requirements;
}

export function matchesLabels(labels: Record<string, string>, requirements: readonly LabelRequirement[]): boolean {
  return requirements.every((r) => {
    const present = Object.hasOwn(labels, r.key);
    switch (r.op) {
      case 'exists':
        return present;
      case 'not-exists':
        return !present;
      case 'equals':
        return present && labels[r.key] === r.value;
      case 'not-equals':
        return !present || labels[r.key] !== r.value;
    }
  });
}

/** Renders label requirements the way parseLabelSelector reads them, for messages. */
export function formatLabelSelector(requirements: readonly LabelRequirement[]): string {
  return requirements
    .map((r) => {
      switch (r.op) {
        case 'equals':
          return `${r.key}=${r.value}`;
        case 'not-equals':
          return `${r.key}!=${r.value}`;
        case 'exists':
          return r.key;
        case 'not-exists':
          return `!${r.key}`;
      }
    })
    .join(',');
}
