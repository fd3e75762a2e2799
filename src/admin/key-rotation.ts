import type { MikroORM } from '@mikro-orm/postgresql';
import type { SigningKeyVault } from '../identity/signing-key-vault.js';
import type { AuthStateCipher } from '../sessions/auth-state-cipher.js';
import { countAuthStatesByKey, reencryptAuthStates } from '../sessions/auth-state-rotation.js';

/** How one kind of sealed data stands against its configured keys. */
export interface KeyUsage {
  /** What is sealed, for people: "signing keys". */
  what: string;
  variable: string;
  /** Configured key ids, newest first. */
  configured: string[];
  /** Rows sealed with each key id (configured or not). */
  byKeyId: Map<string, number>;
  /** Rows still in plaintext (signing keys from earlier versions). */
  plaintext: number;
  /** Re-encrypted by this run, by the key they were under. */
  reencrypted: Map<string, number>;
  /** Rows this process cannot open, by key id. */
  unreadable: Map<string, string[]>;
  /** Rows rewritten by a replica while this ran (left as that replica sealed them). */
  changedMeanwhile: number;
}

/** The outcome of `npm run keys:rotate`. */
export interface RotationReport {
  usages: KeyUsage[];
  /** Every row is under its newest key: older keys nothing uses can be removed. */
  done: boolean;
  /** Configured keys, other than the newest, that no stored row uses any more. */
  removable: { variable: string; keyId: string }[];
}

/**
 * Brings every sealed secret under the newest key of its variable (or with
 * `check`, only reports, refusing and naming what the real run would), so
 * older keys can be removed from configuration.
 * Signing keys are all-or-nothing (a key this process cannot open stops the
 * run before anything changes, with KeyUnavailableError); auth states go row
 * by row and report the ones they cannot open.
 */
export async function rotateKeys(
  orm: MikroORM,
  keys: { signing: SigningKeyVault; authStates: AuthStateCipher },
  options: { check: boolean },
): Promise<RotationReport> {
  const { signing, authStates } = keys;
  const signingUsage = emptyUsage('signing keys', 'SIGNING_KEY_ENCRYPTION_KEYS', signing.kekIds);
  const statesUsage = emptyUsage('session auth states', authStates.variable, authStates.keyIds);

  if (options.check) {
    // What the real run would refuse or fail to open, said the same way; nothing is written.
    await signing.checkAll(orm.em.fork());
    statesUsage.unreadable = (await reencryptAuthStates(orm.em.fork(), authStates, { dryRun: true })).unreadable;
  } else {
    const sealed = await signing.sealAll(orm.em.fork());
    for (const [from, kids] of sealed.reencrypted) signingUsage.reencrypted.set(from, kids.length);
    if (sealed.plaintextSealed.length > 0) signingUsage.reencrypted.set('(plaintext)', sealed.plaintextSealed.length);
    const rotated = await reencryptAuthStates(orm.em.fork(), authStates);
    statesUsage.reencrypted = rotated.reencrypted;
    statesUsage.unreadable = rotated.unreadable;
    statesUsage.changedMeanwhile = rotated.changedMeanwhile;
  }

  const census = await signing.census(orm.em.fork());
  signingUsage.byKeyId = census.byKekId;
  signingUsage.plaintext = census.plaintext;
  statesUsage.byKeyId = await countAuthStatesByKey(orm.em.fork());

  const usages = [signingUsage, statesUsage];
  const behind = (usage: KeyUsage) =>
    usage.plaintext + [...usage.byKeyId].filter(([id]) => id !== usage.configured[0]).reduce((n, [, c]) => n + c, 0);
  return {
    usages,
    done: usages.every((usage) => behind(usage) === 0),
    removable: usages.flatMap((usage) =>
      usage.configured
        .slice(1)
        .filter((id) => !usage.byKeyId.has(id))
        .map((keyId) => ({ variable: usage.variable, keyId })),
    ),
  };
}

/** The report as `npm run keys:rotate` prints it. */
export function describeRotation(report: RotationReport): string[] {
  const lines: string[] = [];
  const counts = (map: Map<string, number>) => [...map].map(([id, n]) => `${n} under ${id}`).join(', ');
  for (const usage of report.usages) {
    const [newest] = usage.configured;
    lines.push(`${capitalise(usage.what)} (${usage.variable}, newest key ${newest ?? '?'}):`);
    if (usage.reencrypted.size > 0) {
      const from = [...usage.reencrypted].map(([id, n]) => `${n} from ${id}`).join(', ');
      lines.push(`  re-encrypted under ${newest ?? '?'}: ${from}`);
    }
    if (usage.changedMeanwhile > 0) {
      lines.push(
        `  ${usage.changedMeanwhile} rewritten by a replica meanwhile (sealed with that replica's newest key)`,
      );
    }
    for (const [keyId, ids] of usage.unreadable) {
      lines.push(
        `  cannot open ${ids.length} sealed with ${keyId}: ${ids.slice(0, 5).join(', ')}${ids.length > 5 ? ', ...' : ''}`,
      );
    }
    const stored = counts(usage.byKeyId);
    lines.push(
      `  stored: ${stored === '' ? 'none' : stored}${usage.plaintext > 0 ? `, ${usage.plaintext} in plaintext` : ''}`,
    );
  }
  if (report.removable.length > 0) {
    const keys = report.removable.map(({ variable, keyId }) => `${keyId} (${variable})`).join(', ');
    lines.push(
      `Nothing is sealed with ${keys} any more: remove ${report.removable.length === 1 ? 'it' : 'them'} from every replica.`,
    );
  }
  if (!report.done) {
    lines.push(
      'Some data is not under its newest key yet: run `npm run keys:rotate` once every replica runs with the new key first.',
    );
  }
  return lines;
}

function emptyUsage(what: string, variable: string, configured: string[]): KeyUsage {
  return {
    what,
    variable,
    configured,
    byKeyId: new Map(),
    plaintext: 0,
    reencrypted: new Map(),
    unreadable: new Map(),
    changedMeanwhile: 0,
  };
}

const capitalise = (text: string) => text.charAt(0).toUpperCase() + text.slice(1);
