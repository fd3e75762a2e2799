import type { EntityManager } from '@mikro-orm/postgresql';
import { KeyUnavailableError } from '../platform/crypto/envelope-cipher.js';
import type { AuthStateCipher } from './auth-state-cipher.js';

/** What reencryptAuthStates() did. */
export interface AuthStateRotationReport {
  /** Auth states re-encrypted under the newest key, counted by the key they were under. */
  reencrypted: Map<string, number>;
  /** Checkpointed again while this ran: the newer checkpoint is left as its replica sealed it. */
  changedMeanwhile: number;
  /** Sessions whose auth state this process cannot open, by the key it is under. */
  unreadable: Map<string, string[]>;
}

interface StoredState {
  session_id: string;
  version: number;
  key_id: string;
  iv: Buffer;
  ciphertext: Buffer;
  tag: Buffer;
}

/**
 * Re-encrypts every stored auth state not under the newest SESSION_STATE_KEYS
 * key, so older keys can be removed (`npm run keys:rotate`). Rows are read in
 * batches and each is rewritten only if no checkpoint replaced it meanwhile;
 * the version is kept, since the credentials did not change. With `dryRun`
 * (`--check`) it only opens them, to name the ones it could not re-encrypt.
 */
export async function reencryptAuthStates(
  em: EntityManager,
  cipher: AuthStateCipher,
  options: { dryRun?: boolean; batchSize?: number } = {},
): Promise<AuthStateRotationReport> {
  const { dryRun = false, batchSize = 200 } = options;
  const report: AuthStateRotationReport = { reencrypted: new Map(), changedMeanwhile: 0, unreadable: new Map() };
  const connection = em.getConnection();
  let after = '';
  for (;;) {
    const batch = await connection.execute<StoredState[]>(
      `select "session_id"::text as session_id, "version", "key_id", "iv", "ciphertext", "tag"
         from "session_auth_state" where "key_id" <> ? and "session_id"::text > ?
         order by "session_id"::text limit ?`,
      [cipher.currentKeyId, after, batchSize],
    );
    for (const row of batch) {
      let plaintext: Buffer;
      try {
        plaintext = cipher.open(row.session_id, {
          keyId: row.key_id,
          iv: row.iv,
          ciphertext: row.ciphertext,
          tag: row.tag,
        });
      } catch (error) {
        if (!(error instanceof KeyUnavailableError)) throw error;
        report.unreadable.set(row.key_id, [...(report.unreadable.get(row.key_id) ?? []), row.session_id]);
        continue;
      }
      if (dryRun) continue;
      const sealed = cipher.seal(row.session_id, plaintext);
      const result = await connection.execute<{ affectedRows: number }>(
        `update "session_auth_state" set "key_id" = ?, "iv" = ?, "ciphertext" = ?, "tag" = ?
           where "session_id" = ? and "version" = ?`,
        [sealed.keyId, sealed.iv, sealed.ciphertext, sealed.tag, row.session_id, row.version],
        'run',
      );
      if (result.affectedRows > 0) {
        report.reencrypted.set(row.key_id, (report.reencrypted.get(row.key_id) ?? 0) + 1);
      } else {
        report.changedMeanwhile += 1;
      }
    }
    const last = batch.at(-1);
    if (!last || batch.length < batchSize) return report;
    after = last.session_id;
  }
}

/** How many stored auth states each key seals. */
export async function countAuthStatesByKey(em: EntityManager): Promise<Map<string, number>> {
  const rows = await em
    .getConnection()
    .execute<{ key_id: string; n: string }[]>(
      `select "key_id", count(*) as n from "session_auth_state" group by "key_id"`,
    );
  return new Map(rows.map((row) => [row.key_id, Number(row.n)]));
}
