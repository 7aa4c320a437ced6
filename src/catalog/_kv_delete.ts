/**
 * Batched deletion of every key under a KV prefix, shared by the image store (pieces) and the
 * history (pruning).
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

async function deleteKeys(kv: Deno.Kv, keys: Deno.KvKey[]): Promise<void> {
  const op = kv.atomic();
  for (const key of keys) op.delete(key);
  await op.commit();
}
