/**
 * The active rollouts (CREATED, RUNNING, PAUSED) kept in memory for the request path, so that a
 * device asking for `latest` costs no KV read of them. bench/rollout.ts measured those two reads
 * per REQUEST (the active list and its records) as part of what slowed `latest` against a named
 * version while a sender was busy offering.
 *
 * The copy is dropped when a KV watch sees the active list or an active record change (every
 * commit of this process: the sender's own rules, a rollout created through an HTTP API), and
 * when it is older than `ACTIVE_ROLLOUTS_MAX_AGE_MS`, because a KV watch does not see commits of
 * other processes on the same file (the CLI, another sender instance). The sender's timer reads
 * them fresh on every tick and hands its read over with {@linkcode ActiveRollouts.update}.
 * @module
 */

import { ACTIVE_ROLLOUTS_MAX_AGE_MS } from "./limits.ts";
import type { RolloutRecord } from "./rollout_state.ts";
import type { RolloutStore } from "./store.ts";

/** Options of {@linkcode ActiveRollouts}. */
export interface ActiveRolloutsOptions {
  /** Longest age of the copy; default `ACTIVE_ROLLOUTS_MAX_AGE_MS`. */
  maxAgeMs?: number;
  /** Monotonic clock in ms; default `performance.now`. */
  now?: () => number;
  /** Called when the watch saw the active rollouts change (the rollout driver steps then). */
  onChange?: () => void;
}

/** See the module doc. */
export class ActiveRollouts {
  readonly #store: Pick<RolloutStore, "active" | "activeChanged">;
  readonly #maxAgeMs: number;
  readonly #now: () => number;
  readonly #onChange: () => void;
  readonly #closing = new AbortController();
  #copy: { records: RolloutRecord[]; at: number } | undefined;
  #loading: Promise<RolloutRecord[]> | undefined;
  #watching = false;
  /** Reads of KV made for the request path (tests and the bench look at it). */
  reads = 0;

  /** A copy of `store`'s active rollouts; starts empty (the first `get` reads). */
  constructor(
    store: Pick<RolloutStore, "active" | "activeChanged">,
    options: ActiveRolloutsOptions = {},
  ) {
    this.#store = store;
    this.#maxAgeMs = options.maxAgeMs ?? ACTIVE_ROLLOUTS_MAX_AGE_MS;
    this.#now = options.now ?? (() => performance.now());
    this.#onChange = options.onChange ?? (() => {});
  }

  /** The active rollouts, oldest first: the copy while it is valid, else read from KV once. */
  async get(): Promise<RolloutRecord[]> {
    const copy = this.#copy;
    if (copy !== undefined && this.#now() - copy.at < this.#maxAgeMs) return copy.records;
    // Requests arriving together share one read.
    this.#loading ??= this.#load().finally(() => (this.#loading = undefined));
    return await this.#loading;
  }

  /** Takes a fresh read made elsewhere (the sender's tick) as the copy. */
  update(records: RolloutRecord[]): void {
    if (this.#closing.signal.aborted) return;
    this.#copy = { records, at: this.#now() };
    this.#watch();
  }

  /** Stops watching; `get` reads KV every time from now on. */
  close(): void {
    this.#closing.abort();
    this.#copy = undefined;
  }

  async #load(): Promise<RolloutRecord[]> {
    this.reads++;
    const started = this.#now();
    const generation = this.#generation;
    const records = await this.#store.active();
    // A change seen while reading may not be in what was read: keep no copy then.
    if (generation === this.#generation && !this.#closing.signal.aborted) {
      this.#copy = { records, at: started };
      this.#watch();
    }
    return records;
  }

  #generation = 0;

  /** Watches for changes while a copy is kept; a change drops the copy. */
  #watch(): void {
    if (this.#watching || this.#closing.signal.aborted) return;
    this.#watching = true;
    (async () => {
      try {
        while (this.#copy !== undefined && !this.#closing.signal.aborted) {
          const watched = this.#copy;
          await this.#store.activeChanged(watched.records, this.#closing.signal);
          this.#generation++;
          // A newer copy handed over meanwhile (update) is checked on the next round.
          if (this.#copy === watched) this.#copy = undefined;
          if (!this.#closing.signal.aborted) this.#onChange();
        }
      } catch {
        this.#copy = undefined;
      } finally {
        // Cleared in the same turn as the loop's last check, so a copy taken after it starts a
        // new watch.
        this.#watching = false;
      }
    })();
  }
}
