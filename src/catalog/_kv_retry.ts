/**
 * The optimistic-commit loop the rollout and inventory stores use: run an attempt that reads, decides and commits
 * with checks; `undefined` means its commit lost a race, so read again. A KV file locked by
 * another handle or process (SQLite reports `database is locked`, seen with two sender
 * instances on one file) is waited out with a short randomised back-off, which the history's
 * group commits use too.
 *
 * @module
 */

import { KV_BUSY_MAX_BACKOFF_MS, KV_BUSY_WAIT_MS, MAX_COMMIT_ATTEMPTS } from "./limits.ts";

/** True for the error Deno KV raises when its SQLite file is locked by another writer. */
export function isKvBusy(e: unknown): boolean {
  return e instanceof Error && /database is (locked|busy)/i.test(e.message);
}

/**
 * Runs `attempt` until it returns something other than `undefined`; throws
 * `conflict(attempts)` after `MAX_COMMIT_ATTEMPTS` lost races or `KV_BUSY_WAIT_MS` of locked
 * file. Other errors pass through.
 */
export async function retryCommit<T>(
  attempt: () => Promise<T | undefined>,
  conflict: (why: string) => Error,
): Promise<T> {
  let lost = 0;
  let waited = 0;
  let backoff = 1;
  for (;;) {
    try {
      const result = await attempt();
      if (result !== undefined) return result;
      if (++lost >= MAX_COMMIT_ATTEMPTS) {
        throw conflict(`other writers changed the same entries ${lost} times in a row`);
      }
    } catch (e) {
      if (!isKvBusy(e)) throw e;
      if (waited >= KV_BUSY_WAIT_MS) {
        throw conflict(`the KV file stayed locked by another writer for ${waited} ms`);
      }
      waited += await busyPause(backoff);
      backoff = nextBusyBackoff(backoff);
    }
  }
}

/** Waits about `backoff` ms (randomised, so two writers drift apart); returns the ms waited. */
export async function busyPause(backoff: number): Promise<number> {
  const ms = Math.ceil(backoff * (0.5 + Math.random()));
  await new Promise((resolve) => setTimeout(resolve, ms));
  return ms;
}

/** The back-off after `backoff`: doubled, up to `KV_BUSY_MAX_BACKOFF_MS` (from 1 ms). */
export function nextBusyBackoff(backoff: number): number {
  return Math.min(backoff * 2, KV_BUSY_MAX_BACKOFF_MS);
}
