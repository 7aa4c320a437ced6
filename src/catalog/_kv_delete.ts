/**
 * Batched deletion in Deno KV, shared by the image store (every piece under a prefix) and the
 * history (the records a prune picked).
 * @module
 */

import { DELETES_PER_COMMIT } from "./limits.ts";

/**
 * Deletes the keys under `prefix` in commits of {@linkcode DELETES_PER_COMMIT}, skipping the
 * first `skip` keys in listing order (`reverse` lists newest first).
 */
export async function deleteAll(
  kv: Deno.Kv,
  prefix: Deno.KvKey,
  { skip = 0, reverse = false }: { skip?: number; reverse?: boolean } = {},
): Promise<void> {
  let batch: Deno.KvKey[] = [];
  let seen = 0;
  for await (const e of kv.list({ prefix }, { reverse })) {
    if (seen++ < skip) continue;
    batch.push(e.key);
    if (batch.length === DELETES_PER_COMMIT) {
      await deleteKeys(kv, batch);
      batch = [];
    }
  }
  if (batch.length > 0) await deleteKeys(kv, batch);
}

/** Deletes `keys` in commits of at most {@linkcode DELETES_PER_COMMIT}. */
export async function deleteKeys(kv: Deno.Kv, keys: readonly Deno.KvKey[]): Promise<void> {
  for (let i = 0; i < keys.length; i += DELETES_PER_COMMIT) {
    const op = kv.atomic();
    for (const key of keys.slice(i, i + DELETES_PER_COMMIT)) op.delete(key);
    await op.commit();
  }
}
