import {
  BufferJSON,
  initAuthCreds,
  proto,
  type AuthenticationCreds,
  type AuthenticationState,
  type SignalDataSet,
  type SignalDataTypeMap,
  type SignalKeyStore,
} from '@whiskeysockets/baileys';

/**
 * A Baileys session's auth state kept in memory instead of files, so it can
 * travel as one snapshot through the control plane's checkpoints.
 *
 * Snapshot format (version 1): UTF-8 JSON
 * `{ "format": "switchboard.baileys-auth", "version": 1, "creds": ..., "keys": { <type>: { <id>: value } } }`
 * written with Baileys' BufferJSON replacer (binary as base64) and read with
 * its reviver, the same encoding Baileys' own file store uses per file.
 *
 * One writer: the engine session that created the state is the only code that
 * touches it (Baileys writes through `keys.set` and by mutating `creds` on
 * creds.update, both on that session's socket). A second worker never shares
 * the object; it gets its own copy from a checkpoint, and the control plane's
 * assignment epochs refuse checkpoints from a worker that lost the session.
 */
export const AUTH_SNAPSHOT_FORMAT = 'switchboard.baileys-auth';
export const AUTH_SNAPSHOT_VERSION = 1;

/** A snapshot that cannot be read (corrupt, another format, a newer version). */
export class AuthSnapshotError extends Error {
  override readonly name = 'AuthSnapshotError';
}

type KeyType = keyof SignalDataTypeMap;

/** The decoded content of a snapshot. */
export interface AuthSnapshot {
  creds: AuthenticationCreds;
  keys: SignalDataSet;
}

/** An auth state the engine hands to Baileys, plus what it needs to checkpoint it. */
export interface CheckpointedAuthState {
  /** Pass to makeWASocket as `auth`; Baileys mutates `creds` and writes through `keys`. */
  readonly state: AuthenticationState;
  /** The whole state as snapshot bytes, taken synchronously (a consistent point in time). */
  snapshot(): Uint8Array;
  /** Whether the creds belong to a linked device (pairing finished), i.e. worth checkpointing. */
  isLinked(): boolean;
}

/**
 * Builds the in-memory auth state: restored from a snapshot, or fresh
 * credentials (Baileys' initAuthCreds) for a session never linked.
 * `onKeysChanged` runs after every `keys.set`/`keys.clear`; creds changes
 * arrive as the socket's creds.update event, which the engine watches itself.
 */
export function createAuthState(snapshot: Uint8Array | null, onKeysChanged: () => void): CheckpointedAuthState {
  const restored = snapshot === null ? null : decodeAuthSnapshot(snapshot);
  const creds = restored?.creds ?? initAuthCreds();
  const store = new Map<KeyType, Map<string, unknown>>();
  for (const [type, entries] of Object.entries(restored?.keys ?? {})) {
    store.set(type as KeyType, new Map(Object.entries(entries as Record<string, unknown>)));
  }

  const keys: SignalKeyStore = {
    get<T extends KeyType>(type: T, ids: string[]): { [id: string]: SignalDataTypeMap[T] } {
      const bucket = store.get(type);
      const found: { [id: string]: SignalDataTypeMap[T] } = {};
      for (const id of ids) {
        const value = bucket?.get(id);
        // The store only ever holds what set() was given for this type.
        if (value !== undefined) found[id] = value as SignalDataTypeMap[T];
      }
      return found;
    },
    set(data: SignalDataSet): void {
      for (const [type, entries] of Object.entries(data)) {
        if (!entries) continue;
        let bucket = store.get(type as KeyType);
        for (const [id, value] of Object.entries(entries as Record<string, unknown>)) {
          if (value === null || value === undefined) {
            bucket?.delete(id);
          } else {
            if (!bucket) store.set(type as KeyType, (bucket = new Map<string, unknown>()));
            bucket.set(id, value);
          }
        }
      }
      onKeysChanged();
    },
    clear(): void {
      store.clear();
      onKeysChanged();
    },
  };

  return {
    state: { creds, keys },
    snapshot: () => {
      const keyData: Record<string, Record<string, unknown>> = {};
      for (const [type, bucket] of store) {
        if (bucket.size > 0) keyData[type] = Object.fromEntries(bucket);
      }
      return encodeAuthSnapshot({ creds, keys: keyData });
    },
    isLinked: () => isLinked(creds),
  };
}

/**
 * Linked means pairing finished: WhatsApp signed our device identity
 * (`account`, set on pair-success). `me` alone is not enough: a pairing-code
 * request sets it before the user has typed the code.
 */
export function isLinked(creds: AuthenticationCreds): boolean {
  return Boolean(creds.me?.id) && creds.account !== undefined && creds.account !== null;
}

export function encodeAuthSnapshot(content: AuthSnapshot): Uint8Array {
  const json = JSON.stringify(
    { format: AUTH_SNAPSHOT_FORMAT, version: AUTH_SNAPSHOT_VERSION, creds: content.creds, keys: content.keys },
    BufferJSON.replacer,
  );
  return new TextEncoder().encode(json);
}

export function decodeAuthSnapshot(bytes: Uint8Array): AuthSnapshot {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes), BufferJSON.reviver) as unknown;
  } catch (error) {
    throw new AuthSnapshotError('auth snapshot is not valid UTF-8 JSON', { cause: error });
  }
  if (!isRecord(parsed) || parsed.format !== AUTH_SNAPSHOT_FORMAT) {
    throw new AuthSnapshotError('auth snapshot is not a Baileys auth snapshot');
  }
  if (parsed.version !== AUTH_SNAPSHOT_VERSION) {
    throw new AuthSnapshotError(
      `auth snapshot version ${JSON.stringify(parsed.version)} is not supported (expected ${AUTH_SNAPSHOT_VERSION})`,
    );
  }
  const { creds, keys } = parsed;
  if (!isRecord(creds) || !isRecord(creds.noiseKey) || !isRecord(creds.signedIdentityKey)) {
    throw new AuthSnapshotError('auth snapshot has no credentials');
  }
  if (!isRecord(keys)) throw new AuthSnapshotError('auth snapshot has no key store');

  const restoredKeys: Record<string, Record<string, unknown>> = {};
  for (const [type, entries] of Object.entries(keys)) {
    // Types are not checked against a list: a newer Baileys may add some, and
    // the store keeps whatever Baileys writes.
    if (!isRecord(entries)) throw new AuthSnapshotError(`auth snapshot key type ${JSON.stringify(type)} is not a map`);
    restoredKeys[type] =
      type === 'app-state-sync-key'
        ? // JSON loses the protobuf class (and bytes become base64 via the
          // message's toJSON); Baileys' file store rebuilds it the same way.
          Object.fromEntries(
            Object.entries(entries).map(([id, value]) => [
              id,
              proto.Message.AppStateSyncKeyData.fromObject(value as Record<string, unknown>),
            ]),
          )
        : entries;
  }

  const restoredCreds = creds as unknown as AuthenticationCreds;
  if (isRecord(creds.account)) {
    // Same for the signed device identity: back to the message Baileys decoded at pairing.
    restoredCreds.account = proto.ADVSignedDeviceIdentity.fromObject(creds.account);
  }
  return { creds: restoredCreds, keys: restoredKeys };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
