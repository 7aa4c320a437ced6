/**
 * Batched deletion in Deno KV, for the image store (every piece of an image, under its prefix).
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
  let op = kv.atomic();
  let batched = 0;
  let seen = 0;
  for await (const e of kv.list({ prefix }, { reverse })) {
    if (seen++ < skip) continue;
    op.delete(e.key);
    if (++batched === DELETES_PER_COMMIT) {
      await op.commit();
      op = kv.atomic();
      batched = 0;
    }
  }
  if (batched > 0) await op.commit();
}
