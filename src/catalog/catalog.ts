/**
 * The firmware catalog: the one entry to images and history in Deno KV. It opens the store (the
 * only module that calls `Deno.openKv`) and composes its rooms: admission rules
 * (`admission.ts`), image storage (`image_store.ts`), the LRU image cache (`image_cache.ts`), the
 * per-image lock (`key_lock.ts`) and the history (`history.ts`), and hands out the rollout and
 * inventory stores on the same KV. Keys come from `kv_keys.ts`.
 *
 * @module
 */

import { CatalogError } from "./errors.ts";
import { type AddImageOptions, admitImage } from "./admission.ts";
import { History } from "./history.ts";
import type { DeviceStatusRecord, TransferRecord } from "./history.ts";
import { ImageCache } from "./image_cache.ts";
import { isKvConnectUrl, kvConnectProblem, kvUrlProblem } from "./kv_location.ts";
import type { ImageMeta } from "./image_meta.ts";
import { type GarbageReport, ImageStore } from "./image_store.ts";
import { KeyLock } from "./key_lock.ts";
import {
  DEFAULT_CACHE_BYTES,
  DEFAULT_LIST_LIMIT,
  HISTORY_FLUSH_MS,
  HISTORY_LIMIT,
  HISTORY_RECORDS_PER_DEVICE,
  MAX_PRODUCT_BYTES,
  MAX_VERSION_BYTES,
  MIN_SHA_PREFIX_CHARS,
  UPLOAD_GRACE_MS,
} from "./limits.ts";
import { compareVersions } from "./semver.ts";

/** Options of {@linkcode Catalog.open}. */
export interface CatalogOptions {
  /**
   * Bytes of whole images held in memory, cached or leased in use ({@linkcode Catalog.leaseImage});
   * least recently used unused images are evicted first; default 64 MiB.
   */
  cacheBytes?: number;
  /** Transfer and device status records kept in all, each; default {@linkcode HISTORY_LIMIT}. */
  historyLimit?: number;
  /** Records of each kind kept per device; default {@linkcode HISTORY_RECORDS_PER_DEVICE}. */
  historyPerDevice?: number;
  /**
   * Longest a history record waits to share its commit with others; default
   * {@linkcode HISTORY_FLUSH_MS}; 0 commits the records of one turn of the event loop together.
   */
  historyFlushMs?: number;
}

/** Test-only view of a catalog's internals; see {@linkcode _catalogInternals}. */
export interface CatalogInternals {
  /** The KV store. */
  kv: Deno.Kv;
  /** How many times an image was read from KV (cache misses that reached KV). */
  imageLoads(): number;
  /** Writes an image's pieces without its metadata, as an interrupted upload leaves them. */
  writePieces(sha256: string, bytes: Uint8Array): Promise<void>;
  /** Counts the piece keys stored under an image's SHA-256. */
  countPieces(sha256: string): Promise<number>;
  /** Calls `hook` after every piece commit of an upload (with its 0-based number); may throw. */
  setPieceCommitHook(hook: ((commit: number) => void | Promise<void>) | undefined): void;
  /** Bytes now held by the cache (cached and leased). */
  cachedBytes(): number;
}

/** What the image cache did since the catalog opened, and what it holds now. */
export interface CacheStats {
  /** Image reads and leases served from memory. */
  hits: number;
  /** Image reads and leases that had to read the image from KV (or wait for that read). */
  misses: number;
  /** Bytes held now, cached and leased. */
  usedBytes: number;
  /** The bound on them (`cacheBytes`). */
  limitBytes: number;
}

/** Bytes of an image held in memory for its user until `release()` (idempotent). */
export interface ImageLease {
  /** The image; shared, never write to it. */
  bytes: Uint8Array;
  /** Ends the lease; the bytes may then be evicted. */
  release(): void;
}

let internalsOf: (catalog: Catalog) => CatalogInternals;

/**
 * Test-only: exposes the KV store, the KV read counter and the piece writer of a catalog, so
 * tests can simulate interrupted uploads and count KV reads. Not part of the catalog API.
 */
export function _catalogInternals(catalog: Catalog): CatalogInternals {
  return internalsOf(catalog);
}

const SHA256_HEX = /^[0-9a-f]{64}$/;
const UTF8 = new TextEncoder();
const SHA256_PREFIX = new RegExp(`^[0-9a-f]{${MIN_SHA_PREFIX_CHARS},63}$`);

/**
 * The firmware catalog over one Deno KV store. Open it with {@linkcode Catalog.open}; close it
 * with {@linkcode Catalog.close}. Safe for concurrent use within one process; several processes
 * may share one KV file (adds of different images and history writes never conflict).
 */
export class Catalog {
  readonly #kv: Deno.Kv;
  readonly #store: ImageStore;
  readonly #history: History;
  readonly #cache: ImageCache;
  /** Reads from KV under way, so concurrent readers of one image share one read. */
  readonly #loading = new Map<string, { promise: Promise<Uint8Array> }>();
  /** Adds and removes of one SHA-256 run one after another within this process. */
  readonly #lock = new KeyLock();
  #closed = false;

  static {
    internalsOf = (c) => ({
      kv: c.#kv,
      imageLoads: () => c.#store.loads,
      writePieces: (sha256, bytes) => c.#store.writePieces(sha256, bytes),
      countPieces: (sha256) => c.#store.countPieces(sha256),
      setPieceCommitHook: (hook) => {
        c.#store.pieceCommitHook = hook;
      },
      cachedBytes: () => c.#cache.usedBytes,
    });
  }

  private constructor(
    kv: Deno.Kv,
    { cacheBytes, historyLimit, historyPerDevice, historyFlushMs }: Required<CatalogOptions>,
  ) {
    this.#kv = kv;
    this.#store = new ImageStore(kv);
    this.#history = new History(kv, {
      limit: historyLimit,
      perDevice: historyPerDevice,
      flushMs: historyFlushMs,
    });
    this.#cache = new ImageCache(cacheBytes);
  }

  /**
   * Opens a catalog. `path` undefined or `":memory:"` gives a fresh in-memory store; an `http://`
   * or `https://` URL is a KV Connect server (e.g. `denokv`) whose access token Deno's client takes
   * from `DENO_KV_ACCESS_TOKEN` (kv_location.ts); any other value is a KV file (its folder must
   * exist). Throws {@linkcode CatalogError} `STORAGE_ERROR` when the store cannot be opened (a
   * KV Connect URL without its token included), `INVALID_ARGUMENT` for bad options.
   */
  static async open(path?: string, options: CatalogOptions = {}): Promise<Catalog> {
    const cacheBytes = options.cacheBytes ?? DEFAULT_CACHE_BYTES;
    const historyLimit = options.historyLimit ?? HISTORY_LIMIT;
    const historyPerDevice = options.historyPerDevice ?? HISTORY_RECORDS_PER_DEVICE;
    const historyFlushMs = options.historyFlushMs ?? HISTORY_FLUSH_MS;
    if (!Number.isSafeInteger(historyFlushMs) || historyFlushMs < 0) {
      throw invalid(
        `Cannot open catalog: historyFlushMs ${historyFlushMs} is not a non-negative integer`,
      );
    }
    if (!Number.isSafeInteger(cacheBytes) || cacheBytes < 0) {
      throw invalid(`Cannot open catalog: cacheBytes ${cacheBytes} is not a non-negative integer`);
    }
    if (!Number.isSafeInteger(historyLimit) || historyLimit < 1) {
      throw invalid(`Cannot open catalog: historyLimit ${historyLimit} is not a positive integer`);
    }
    if (!Number.isSafeInteger(historyPerDevice) || historyPerDevice < 1) {
      throw invalid(
        `Cannot open catalog: historyPerDevice ${historyPerDevice} is not a positive integer`,
      );
    }
    const where = path === undefined || path === ":memory:" ? ":memory:" : path;
    const problem = isKvConnectUrl(where) ? kvConnectProblem(where, Deno.env) : kvUrlProblem(where);
    if (problem) throw new CatalogError("STORAGE_ERROR", `Cannot open catalog: ${problem}`);
    let kv: Deno.Kv;
    try {
      kv = await Deno.openKv(where);
    } catch (e) {
      throw new CatalogError(
        "STORAGE_ERROR",
        `Cannot open catalog: KV store "${where}" failed to open: ${
          e instanceof Error ? e.message : String(e)
        }`,
        { cause: e },
      );
    }
    return new Catalog(kv, { cacheBytes, historyLimit, historyPerDevice, historyFlushMs });
  }

  /**
   * Adds an image. ESP32 app images are recognised from their bytes: product and version come
   * from the app descriptor when not given, and must match it when given. Throws
   * {@linkcode CatalogError}: `NOT_AN_APP_IMAGE` (not an ESP32 app and not `generic`),
   * `WRONG_CHIP`, `VERSION_MISMATCH`, `PRODUCT_MISMATCH`, `DUPLICATE_VERSION` (the product
   * already has that version), `DUPLICATE_IMAGE` (the same bytes are already catalogued),
   * `INVALID_ARGUMENT`.
   */
  async addImage(bytes: Uint8Array, options: AddImageOptions = {}): Promise<ImageMeta> {
    this.#assertOpen();
    const meta = admitImage(bytes, options, new Date().toISOString());
    return await this.#lock.run(meta.sha256, async () => {
      await this.#store.add(meta, bytes);
      return meta;
    });
  }

  /** Lists images, all or of one product, by product then newest version first. */
  async list(product?: string): Promise<ImageMeta[]> {
    this.#assertOpen();
    const out = (await this.#store.list()).filter((m) =>
      product === undefined || m.product === product
    );
    return out.sort((a, b) =>
      a.product < b.product ? -1 : a.product > b.product ? 1 : compareVersions(b.version, a.version)
    );
  }

  /** Returns an image's metadata by full SHA-256 (either case), or `null`. */
  async get(sha256: string): Promise<ImageMeta | null> {
    this.#assertOpen();
    const sha = sha256.toLowerCase();
    return SHA256_HEX.test(sha) ? await this.#store.get(sha) : null;
  }

  /**
   * Resolves a product's version to an image: `version` empty, `"latest"` or undefined means the
   * newest version by {@linkcode compareVersions} (semver precedence; semver versions above
   * others; plain string order otherwise); anything else is an exact version. `null` if none.
   */
  async resolve(product: string, version?: string): Promise<ImageMeta | null> {
    this.#assertOpen();
    // No image has a longer name (admission refuses one), and a key built from it could exceed
    // what KV accepts: such a question has no answer, not a storage error.
    if (UTF8.encode(product).length > MAX_PRODUCT_BYTES) return null;
    if (version !== undefined && UTF8.encode(version).length > MAX_VERSION_BYTES) return null;
    if (version && version !== "latest") {
      const sha = await this.#store.indexed(product, version);
      return sha === null ? null : await this.get(sha);
    }
    let best: { version: string; sha256: string } | undefined;
    for (const v of await this.#store.versions(product)) {
      if (!best || compareVersions(v.version, best.version) > 0) best = v;
    }
    return best ? await this.get(best.sha256) : null;
  }

  /**
   * Finds an image by reference: a full SHA-256, a unique SHA-256 prefix of at least
   * {@linkcode MIN_SHA_PREFIX_CHARS} hex digits, or `product@version` (split at the last `@`;
   * `product@latest` works). Returns `null` when nothing matches; throws
   * {@linkcode CatalogError} `AMBIGUOUS_REF` or `INVALID_ARGUMENT`.
   */
  async find(ref: string): Promise<ImageMeta | null> {
    this.#assertOpen();
    const lower = ref.toLowerCase();
    if (SHA256_HEX.test(lower)) return await this.get(lower);
    if (SHA256_PREFIX.test(lower)) {
      const found = await this.#store.withShaPrefix(lower, 2);
      if (found.length > 1) {
        throw new CatalogError(
          "AMBIGUOUS_REF",
          `Cannot find image: SHA-256 prefix "${ref}" matches more than one image`,
        );
      }
      return found[0] ?? null;
    }
    const at = ref.lastIndexOf("@");
    if (at > 0) return await this.resolve(ref.slice(0, at), ref.slice(at + 1));
    throw invalid(
      `Cannot find image: reference "${ref}" is not a SHA-256, a SHA-256 prefix of at least ${MIN_SHA_PREFIX_CHARS} hex digits, or product@version`,
    );
  }

  /**
   * Returns an image's bytes. Served from the cache when present; otherwise read from KV once,
   * however many callers ask at the same time, and checked against its SHA-256. The array is
   * shared with other callers: take `subarray` views, never write to it. Throws
   * {@linkcode CatalogError} `NOT_FOUND` or `CORRUPT_IMAGE`.
   */
  readImage(sha256: string): Promise<Uint8Array> {
    this.#assertOpen();
    const sha = sha256.toLowerCase();
    const cached = this.#cache.get(sha);
    if (cached) return Promise.resolve(cached);
    return this.#load(sha);
  }

  /** Reads `sha` from KV (or joins the read under way) and caches it; no cache lookup counted. */
  #load(sha: string): Promise<Uint8Array> {
    const pending = this.#loading.get(sha);
    if (pending) return pending.promise;
    // The entry is the identity of this read: a removal while loading replaces or drops it, and
    // then the bytes must not be cached.
    const entry = {} as { promise: Promise<Uint8Array> };
    entry.promise = (async () => {
      try {
        if (!SHA256_HEX.test(sha)) {
          throw new CatalogError("NOT_FOUND", `Cannot read image: no image has sha256 "${sha}"`);
        }
        const bytes = await this.#store.load(sha);
        if (this.#loading.get(sha) === entry) this.#cache.put(sha, bytes);
        return bytes;
      } finally {
        if (this.#loading.get(sha) === entry) this.#loading.delete(sha);
      }
    })();
    this.#loading.set(sha, entry);
    return entry.promise;
  }

  /** Hits and misses of the image cache since the catalog opened, and the bytes it holds. */
  cacheStats(): CacheStats {
    const c = this.#cache;
    return { hits: c.hits, misses: c.misses, usedBytes: c.usedBytes, limitBytes: c.limitBytes };
  }

  /**
   * Leases an image's bytes for as long as they are in use (an open transfer): they stay in memory
   * and count toward `cacheBytes` until `release()`, the one bound for every image byte held.
   * Throws {@linkcode CatalogError} `MEMORY_BOUND` when the images in use leave no room for this
   * one (one image alone is always served), and what {@linkcode Catalog.readImage} throws.
   */
  async leaseImage(sha256: string): Promise<ImageLease> {
    this.#assertOpen();
    const sha = sha256.toLowerCase();
    const lease = (bytes: Uint8Array): ImageLease => {
      let released = false;
      return {
        bytes,
        release: () => {
          if (released) return;
          released = true;
          this.#cache.release(sha);
        },
      };
    };
    const cached = this.#cache.get(sha);
    if (cached && this.#cache.pin(sha, cached)) return lease(cached);
    const meta = await this.get(sha);
    if (meta && !this.#cache.fits(meta.size)) throw this.#overBound(meta.size);
    // One lease counts one cache lookup: the one above, not a second one in readImage.
    const bytes = this.#cache.peek(sha) ?? await this.#load(sha);
    if (!this.#cache.pin(sha, bytes)) throw this.#overBound(bytes.length);
    return lease(bytes);
  }

  #overBound(size: number): CatalogError {
    return new CatalogError(
      "MEMORY_BOUND",
      `Cannot load image: ${this.#cache.inUseBytes} bytes of images in use and ${size} more exceed the memory bound of ${this.#cache.limitBytes} bytes (cacheBytes)`,
    );
  }

  /**
   * Removes an image found by {@linkcode Catalog.find}: metadata and index entry in one commit,
   * then every piece. Returns the removed metadata. Throws {@linkcode CatalogError} `NOT_FOUND`,
   * `AMBIGUOUS_REF`, `INVALID_ARGUMENT`.
   */
  async remove(ref: string): Promise<ImageMeta> {
    this.#assertOpen();
    const notFound = () =>
      new CatalogError("NOT_FOUND", `Cannot remove image: no image matches "${ref}"`);
    const meta = await this.find(ref);
    if (!meta) throw notFound();
    return await this.#lock.run(meta.sha256, async () => {
      const removed = await this.#store.remove(meta.sha256, ref);
      if (!removed) throw notFound();
      this.#cache.delete(meta.sha256);
      this.#loading.delete(meta.sha256);
      await this.#store.deletePieces(meta.sha256);
      return removed;
    });
  }

  /**
   * Records a finished transfer, replacing its open record. Only the newest `historyPerDevice`
   * records of a device, and `historyLimit` in all, are kept.
   */
  async recordTransfer(record: TransferRecord): Promise<void> {
    this.#assertOpen();
    await this.#history.recordTransfer(record);
  }

  /** Lists transfer records, newest first, at most `limit` (default 100). */
  async listTransfers(limit = DEFAULT_LIST_LIMIT): Promise<TransferRecord[]> {
    this.#assertOpen();
    return await this.#history.listTransfers(limit);
  }

  /**
   * Records a device status report. Only the newest `historyPerDevice` records of a device, and
   * `historyLimit` in all, are kept.
   */
  async recordDeviceStatus(record: DeviceStatusRecord): Promise<void> {
    this.#assertOpen();
    await this.#history.recordDeviceStatus(record);
  }

  /** Lists device status records, newest first, at most `limit` (default 100). */
  async listDeviceStatus(limit = DEFAULT_LIST_LIMIT): Promise<DeviceStatusRecord[]> {
    this.#assertOpen();
    return await this.#history.listDeviceStatus(limit);
  }

  /**
   * The KV store this catalog opened, for the stores that live beside the images on it (the
   * rollout store and the device inventory: `rolloutStore(catalog)`, `inventoryStore(catalog)`),
   * so every sender instance and the CLI sharing the KV file see the same records. Only the
   * catalog opens and closes it.
   */
  get kv(): Deno.Kv {
    this.#assertOpen();
    return this.#kv;
  }

  /**
   * Collects the pieces an interrupted `image add` left (pieces no image owns) once their add
   * made no progress for `graceMs` (default {@linkcode UPLOAD_GRACE_MS}); an add in progress, in
   * this process or another, is never touched. `dryRun` reports without deleting.
   */
  async collectGarbage(
    options: { graceMs?: number; dryRun?: boolean } = {},
  ): Promise<GarbageReport> {
    this.#assertOpen();
    const graceMs = options.graceMs ?? UPLOAD_GRACE_MS;
    if (!Number.isSafeInteger(graceMs) || graceMs < 0) {
      throw invalid(`Cannot collect garbage: grace ${graceMs} ms is not a non-negative integer`);
    }
    return await this.#store.collectGarbage({
      graceMs,
      dryRun: options.dryRun ?? false,
      now: Date.now(),
    });
  }

  /** Records a transfer that has just opened; its end record replaces it. */
  async recordOpenTransfer(record: TransferRecord): Promise<void> {
    this.#assertOpen();
    await this.#history.recordOpenTransfer(record);
  }

  /** Records of transfers still open (or whose sender was killed), of one sender or all. */
  async listOpenTransfers(senderId?: string, limit?: number): Promise<TransferRecord[]> {
    this.#assertOpen();
    return await this.#history.listOpenTransfers(senderId, limit);
  }

  /**
   * Ends the open records a previous run of sender `senderId` left (it was killed) as
   * `INTERRUPTED`; returns how many.
   */
  async closeInterruptedTransfers(senderId: string): Promise<number> {
    this.#assertOpen();
    return await this.#history.closeInterrupted(senderId, new Date());
  }

  /**
   * Records that sender `senderId` (started at `startedAt`) is alive now, for `ttlMs`: other
   * senders end the open records of one that stops beating ({@linkcode endLostTransfers}).
   */
  async beatSender(senderId: string, startedAt: Date, ttlMs: number): Promise<void> {
    this.#assertOpen();
    await this.#history.beat(senderId, startedAt, ttlMs);
  }

  /** Drops sender `senderId`'s heartbeat (it stopped cleanly). */
  async endSenderBeat(senderId: string): Promise<void> {
    this.#assertOpen();
    await this.#history.endBeat(senderId);
  }

  /**
   * Ends as `SENDER_LOST` the open records of senders other than `ownSenderId` that stopped
   * beating more than `lostAfterMs` ago and opened more than `lostAfterMs` ago (a sender killed
   * under a random id never starts again to record them as `INTERRUPTED`); returns them.
   */
  async endLostTransfers(
    ownSenderId: string,
    options: { lostAfterMs: number; now?: number },
  ): Promise<TransferRecord[]> {
    this.#assertOpen();
    return await this.#history.endLost(ownSenderId, options);
  }

  /**
   * Commits the history records waiting for their group commit now; resolves when they are
   * written (or reported lost to their callers). Call it before {@linkcode Catalog.close}.
   */
  async flushRecords(): Promise<void> {
    this.#assertOpen();
    await this.#history.flush();
  }

  /**
   * Closes the KV store and drops the cache. History records still waiting for their commit are
   * rejected to their callers ({@linkcode Catalog.flushRecords} first writes them). Calling it
   * twice is harmless.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#history.close();
    this.#cache.clear();
    this.#kv.close();
  }

  #assertOpen(): void {
    if (this.#closed) throw new CatalogError("STORAGE_ERROR", "Cannot use catalog: it is closed");
  }
}

function invalid(message: string): CatalogError {
  return new CatalogError("INVALID_ARGUMENT", message);
}
