/**
 * Group commits of records that need no check: many writes (each a few sets and deletes that
 * belong together, e.g. a transfer record and its per-device index entry) collected for a short
 * while and committed in as few atomic commits as the Deno KV limits allow. Each commit of a
 * KV file is an fsync: one per record cost the sender a few milliseconds of a device's fixed
 * work (docs/performance.md, "Fixed cost per transfer").
 *
 * Rules:
 * - Order is kept: writes commit in the order they were made; a commit starts only after the one
 *   before it ended, and a write made while a commit runs goes into the next one.
 * - A write waits at most `flushMs` for company; {@linkcode MAX_WRITES_PER_FLUSH} waiting writes
 *   start a commit at once.
 * - One write's mutations are never split across commits; a commit holds at most
 *   {@linkcode KV_MAX_MUTATIONS_PER_COMMIT} mutations, {@linkcode KV_MAX_CHECKS_PER_COMMIT}
 *   checks, {@linkcode BATCH_COMMIT_BYTES} bytes and {@linkcode BATCH_COMMIT_KEY_BYTES} bytes of
 *   keys.
 * - A commit that fails with an error is tried again ({@linkcode BATCH_COMMIT_ATTEMPTS} in all;
 *   a KV file locked by another writer, `database is locked`, is waited out with a back-off for
 *   up to {@linkcode KV_BUSY_WAIT_MS} besides, like the stores' `retryCommit`); then every write
 *   in it is rejected with a `STORAGE_ERROR` naming the cause, so its caller can
 *   log it. A commit whose check failed (another writer changed a checked entry) has its writes
 *   prepared again and committed again ({@linkcode BATCH_RACE_ATTEMPTS} in all), then rejected
 *   the same way. Nothing is dropped without its promise saying so.
 * - Memory is bounded: beyond `maxQueued` waiting writes a new write is refused at once
 *   (`MEMORY_BOUND`) instead of queued.
 * - A write may cancel a waiting write by its tag (an open transfer's record that its end record
 *   replaces before either reached KV): the cancelled one is not written and settles with the
 *   write that replaced it.
 * @module
 */

import { CatalogError } from "./errors.ts";
import { busyPause, isKvBusy, nextBusyBackoff } from "./_kv_retry.ts";
import {
  BATCH_COMMIT_ATTEMPTS,
  BATCH_COMMIT_BYTES,
  BATCH_COMMIT_KEY_BYTES,
  BATCH_RACE_ATTEMPTS,
  BATCH_RETRY_MS,
  KV_BUSY_WAIT_MS,
  KV_MAX_CHECKS_PER_COMMIT,
  KV_MAX_MUTATIONS_PER_COMMIT,
  MAX_WRITES_PER_FLUSH,
} from "./limits.ts";

/** Mutations that commit together, in one atomic. */
export interface BatchWrite {
  /** Keys to set, with their values. */
  sets: Array<readonly [Deno.KvKey, unknown]>;
  /** Keys to delete. */
  deletes: Deno.KvKey[];
  /** Entries the commit is checked against (a failed check: the write is prepared again). */
  checks?: Deno.AtomicCheck[];
  /** Counters to add to (`Deno.KvU64` sums; several on one key add up). */
  sums?: Array<readonly [Deno.KvKey, bigint]>;
  /** A name by which a later write may cancel this one while it waits. */
  tag?: string;
  /** The tag of a waiting write this one makes needless. */
  cancels?: string;
}

/** Counters of a {@linkcode BatchWriter}, since it was made. */
export interface BatchWriterStats {
  /** Writes accepted. */
  writes: number;
  /** Atomic commits made (successful ones). */
  commits: number;
  /** Writes cancelled by a later write before they were committed. */
  cancelled: number;
  /** Writes refused because `maxQueued` writes were waiting. */
  refused: number;
  /** Commits that failed and were tried again. */
  retries: number;
  /** Commits whose check failed, their writes prepared and committed again. */
  races: number;
  /** Writes rejected after their commit failed every attempt. */
  failed: number;
  /** Most writes waiting at once. */
  peakQueued: number;
}

/** Options of a {@linkcode BatchWriter}. */
export interface BatchWriterOptions<W extends BatchWrite> {
  /** Longest a write waits for others before its commit starts (0: the next turn of the loop). */
  flushMs: number;
  /** Writes waiting at most; beyond it a write is refused. */
  maxQueued: number;
  /** What the writes are, for error messages, e.g. "history records". */
  what: string;
  /**
   * Runs on each group of writes taken for committing, before they are split into commits
   * (e.g. to add the deletes of pruning, read once for the group). It may change the writes'
   * `sets` and `deletes`; a failure rejects the group's writes like a failed commit.
   */
  prepare?: (writes: W[]) => Promise<void>;
  /**
   * Runs after a group's writes are committed, before they resolve and before the next group is
   * taken (e.g. pruning that a caller awaiting its write expects done).
   */
  committed?: (writes: W[]) => Promise<void>;
}

interface Waiting<W> {
  write: W;
  settle: Array<{ resolve: () => void; reject: (err: unknown) => void }>;
  cancelled: boolean;
}

/** Bytes a key takes in a commit, as Deno KV counts it (near enough, from above). */
function kvKeyBytes(key: Deno.KvKey): number {
  let n = 0;
  for (const part of key) {
    if (typeof part === "string") n += utf8Bytes(part) + 2;
    else if (part instanceof Uint8Array) n += part.length + 2;
    else n += 9;
  }
  return n;
}

function utf8Bytes(s: string): number {
  // ASCII (the usual case) is one byte a code unit; anything else takes at most three.
  // deno-lint-ignore no-control-regex
  return /^[\x00-\x7f]*$/.test(s) ? s.length : s.length * 3;
}

function valueBytes(value: unknown): number {
  if (value === true || value === false || value === null) return 1;
  return utf8Bytes(JSON.stringify(value) ?? "");
}

/** Collects writes and commits them in groups; see the module doc. */
export class BatchWriter<W extends BatchWrite = BatchWrite> {
  readonly #kv: Deno.Kv;
  readonly #options: BatchWriterOptions<W>;
  #queue: Waiting<W>[] = [];
  readonly #tagged = new Map<string, Waiting<W>>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #running: Promise<void> | undefined;
  #closed = false;
  /** Counters since the writer was made. */
  readonly stats: BatchWriterStats = {
    writes: 0,
    commits: 0,
    cancelled: 0,
    refused: 0,
    retries: 0,
    races: 0,
    failed: 0,
    peakQueued: 0,
  };

  /** A writer committing to `kv`. */
  constructor(kv: Deno.Kv, options: BatchWriterOptions<W>) {
    this.#kv = kv;
    this.#options = options;
  }

  /** Writes waiting for their commit (not counting the ones being committed). */
  get queued(): number {
    return this.#queue.length;
  }

  /**
   * Queues `write`; resolves when it is committed (or cancelled by a later write that was),
   * rejects with a {@linkcode CatalogError}: `MEMORY_BOUND` at once when `maxQueued` writes are
   * waiting, `STORAGE_ERROR` when its commit failed every attempt or the writer was closed.
   */
  write(write: W): Promise<void> {
    if (this.#closed) {
      return Promise.reject(
        new CatalogError(
          "STORAGE_ERROR",
          `Cannot write ${this.#options.what}: the store is closed`,
        ),
      );
    }
    if (this.#queue.length >= this.#options.maxQueued) {
      this.stats.refused++;
      return Promise.reject(
        new CatalogError(
          "MEMORY_BOUND",
          `Cannot write ${this.#options.what}: ${this.#queue.length} writes are waiting for the store already (the bound is ${this.#options.maxQueued}); the store is slower than the writes come, this one is dropped`,
        ),
      );
    }
    this.stats.writes++;
    return new Promise<void>((resolve, reject) => {
      const waiting: Waiting<W> = { write, settle: [{ resolve, reject }], cancelled: false };
      if (write.cancels !== undefined) {
        const old = this.#tagged.get(write.cancels);
        if (old !== undefined) {
          this.#tagged.delete(write.cancels);
          old.cancelled = true;
          waiting.settle.push(...old.settle);
          this.stats.cancelled++;
        }
      }
      if (write.tag !== undefined) this.#tagged.set(write.tag, waiting);
      this.#queue.push(waiting);
      this.stats.peakQueued = Math.max(this.stats.peakQueued, this.#queue.length);
      this.#schedule();
    });
  }

  /** Commits every waiting write now; resolves when all writes made before the call settled. */
  async flush(): Promise<void> {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#running === undefined && this.#queue.length > 0) this.#run();
    while (this.#running !== undefined) await this.#running;
  }

  /** Refuses new writes and rejects the waiting ones (a commit under way still ends). */
  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    const left = this.#take(this.#queue.length);
    const err = new CatalogError(
      "STORAGE_ERROR",
      `Cannot write ${this.#options.what}: the store was closed before they were written (${left.length} writes)`,
    );
    for (const w of left) for (const s of w.settle) s.reject(err);
  }

  #schedule(): void {
    if (this.#running !== undefined) return; // the running loop takes the queue next
    if (this.#queue.length >= MAX_WRITES_PER_FLUSH) {
      if (this.#timer !== undefined) clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#run();
      return;
    }
    if (this.#timer === undefined) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        if (this.#running === undefined) this.#run();
      }, this.#options.flushMs);
    }
  }

  #run(): void {
    this.#running = (async () => {
      while (this.#queue.length > 0) {
        await this.#commitGroup(this.#take(MAX_WRITES_PER_FLUSH));
      }
    })().finally(() => {
      this.#running = undefined;
      // A write made between the loop's last look at the queue and now waits for no one else.
      if (this.#queue.length > 0 && !this.#closed) this.#schedule();
    });
  }

  /** Takes up to `n` waiting writes (cancelled ones dropped), oldest first. */
  #take(n: number): Waiting<W>[] {
    const taken = this.#queue.splice(0, n);
    for (const w of taken) {
      if (w.write.tag !== undefined && this.#tagged.get(w.write.tag) === w) {
        this.#tagged.delete(w.write.tag);
      }
    }
    return taken.filter((w) => !w.cancelled);
  }

  async #commitGroup(group: Waiting<W>[]): Promise<void> {
    if (group.length === 0) return;
    const committed: Waiting<W>[] = [];
    let pending = group;
    for (let attempt = 1; pending.length > 0; attempt++) {
      try {
        await this.#options.prepare?.(pending.map((w) => w.write));
      } catch (err) {
        this.#fail(pending, err);
        break;
      }
      const raced: Waiting<W>[] = [];
      for (const part of this.#split(pending)) {
        const result = await this.#commit(part);
        if (result === "ok") committed.push(...part);
        else if (result === "raced") raced.push(...part);
      }
      if (raced.length === 0) break;
      this.stats.races++;
      if (attempt >= BATCH_RACE_ATTEMPTS) {
        this.#fail(
          raced,
          new Error(`other writers changed its checked entries ${attempt} times in a row`),
        );
        break;
      }
      pending = raced;
    }
    if (committed.length > 0) {
      try {
        await this.#options.committed?.(committed.map((w) => w.write));
      } catch {
        // The records are written; what runs after (pruning) tries again with the next group.
      }
      for (const w of committed) for (const s of w.settle) s.resolve();
    }
  }

  /** The writes in parts that each fit one commit, in order. */
  #split(writes: Waiting<W>[]): Waiting<W>[][] {
    const parts: Waiting<W>[][] = [];
    let part: Waiting<W>[] = [];
    let mutations = 0;
    let checks = 0;
    let bytes = 0;
    let keyBytes = 0;
    for (const w of writes) {
      const { sets, deletes, checks: wChecks = [], sums = [] } = w.write;
      let wKeys = 0;
      let wBytes = 0;
      for (const [key, value] of sets) {
        const k = kvKeyBytes(key);
        wKeys += k;
        wBytes += k + valueBytes(value);
      }
      for (const key of [...deletes, ...wChecks.map((c) => c.key), ...sums.map(([k]) => k)]) {
        const k = kvKeyBytes(key);
        wKeys += k;
        wBytes += k + 9;
      }
      const m = sets.length + deletes.length + sums.length;
      if (
        part.length > 0 &&
        (mutations + m > KV_MAX_MUTATIONS_PER_COMMIT ||
          checks + wChecks.length > KV_MAX_CHECKS_PER_COMMIT ||
          bytes + wBytes > BATCH_COMMIT_BYTES || keyBytes + wKeys > BATCH_COMMIT_KEY_BYTES)
      ) {
        parts.push(part);
        part = [];
        mutations =
          checks =
          bytes =
          keyBytes =
            0;
      }
      part.push(w);
      mutations += m;
      checks += wChecks.length;
      bytes += wBytes;
      keyBytes += wKeys;
    }
    if (part.length > 0) parts.push(part);
    return parts;
  }

  /**
   * Commits one part, trying again on an error (a locked KV file for up to
   * {@linkcode KV_BUSY_WAIT_MS}, other errors {@linkcode BATCH_COMMIT_ATTEMPTS} times in all);
   * rejects its writes when every attempt failed.
   * Gives "raced" when a check failed (the caller prepares the writes again), "ok" when it
   * committed (its writes are resolved after `committed` ran).
   */
  async #commit(part: Waiting<W>[]): Promise<"ok" | "raced" | "failed"> {
    let lastErr: unknown;
    let busyWaited = 0;
    let backoff = 1;
    for (let attempt = 1; attempt <= BATCH_COMMIT_ATTEMPTS;) {
      try {
        const op = this.#kv.atomic();
        for (const { write } of part) {
          for (const check of write.checks ?? []) op.check(check);
          for (const [key, value] of write.sets) op.set(key, value);
          for (const key of write.deletes) op.delete(key);
          for (const [key, n] of write.sums ?? []) op.sum(key, n);
        }
        if (!(await op.commit()).ok) return "raced";
        this.stats.commits++;
        return "ok";
      } catch (err) {
        lastErr = err;
        if (isKvBusy(err) && busyWaited < KV_BUSY_WAIT_MS) {
          // Another writer holds the file: wait it out, without using up an attempt.
          this.stats.retries++;
          busyWaited += await busyPause(backoff);
          backoff = nextBusyBackoff(backoff);
          continue;
        }
        if (attempt < BATCH_COMMIT_ATTEMPTS) {
          this.stats.retries++;
          await new Promise((r) => setTimeout(r, BATCH_RETRY_MS * attempt));
        }
        attempt++;
      }
    }
    const busy = busyWaited > 0 ? `, the KV file locked for ${busyWaited} ms` : "";
    this.#fail(
      part,
      new Error(
        `${(lastErr as Error)?.message ?? lastErr}; tried ${BATCH_COMMIT_ATTEMPTS} times${busy}`,
      ),
    );
    return "failed";
  }

  #fail(part: Waiting<W>[], cause: unknown): void {
    this.stats.failed += part.length;
    const err = new CatalogError(
      "STORAGE_ERROR",
      `Cannot write ${this.#options.what}: a commit of ${part.length} writes failed (${
        (cause as Error)?.message ?? cause
      }); they are lost, check the store`,
      { cause },
    );
    for (const w of part) for (const s of w.settle) s.reject(err);
  }
}
