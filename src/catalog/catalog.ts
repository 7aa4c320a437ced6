/**
 * The firmware catalog: images stored content-addressed in Deno KV, their (product, version)
 * index, an in-memory cache of whole images, and the transfer and device status history. This is
 * the only module that calls `Deno.openKv`; keys come from `kv_keys.ts`.
 *
 * Storage invariants:
 * - An image's bytes live in pieces of at most `PIECE_BYTES` under its SHA-256, written in
 *   several commits (Deno KV allows at most 1000 mutations and 800 KiB per commit).
 * - Its metadata and index entry are committed together, in one atomic commit that checks the
 *   index entry is absent, and only after every piece is written. An image is visible exactly
 *   when its metadata is, so an interrupted upload is never visible; its pieces are garbage that
 *   adding the same bytes again overwrites.
 * - Removal deletes metadata and index entry first (the image disappears atomically), then the
 *   pieces.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { CatalogError } from "./errors.ts";
import { ESP_CHIP_ID_ESP32 } from "../protocol/image_format.ts";
import {
  espChipName,
  EspImageError,
  hasEspImageMagic,
  parseEspAppImage,
  readEspImageHeader,
} from "./esp_image.ts";
import type { EspAppImage } from "./esp_image.ts";
import {
  deviceStatusKey,
  deviceStatusPrefix,
  imageKey,
  imagePrefix,
  imageShaPrefixRange,
  indexKey,
  indexPrefix,
  pieceKey,
  piecePrefix,
  transferKey,
  transferPrefix,
} from "./kv_keys.ts";
import {
  DEFAULT_CACHE_BYTES,
  DEFAULT_LIST_LIMIT,
  DELETES_PER_COMMIT,
  HISTORY_LIMIT,
  HISTORY_PRUNE_EVERY,
  MAX_IMAGE_BYTES,
  MAX_NAME_BYTES,
  MAX_PRODUCT_BYTES,
  MAX_VERSION_BYTES,
  MIN_SHA_PREFIX_CHARS,
  PIECE_BYTES,
  PIECES_PER_COMMIT,
  SIGNATURE_BYTES,
} from "./limits.ts";
import { compareVersions } from "./semver.ts";

/** What an image is: an ESP32 application (`esp32-app`) or any other file (`file`). */
export type ImageKind = "esp32-app" | "file";

/** Metadata of a catalogued image. */
export interface ImageMeta {
  /** SHA-256 of the whole image, lower-case hex; the image's identity. */
  sha256: string;
  /** Display name, e.g. the uploaded file's name. */
  name: string;
  /** Product (for ESP32 apps, the descriptor's project name). */
  product: string;
  /** Version (for ESP32 apps, the descriptor's version). */
  version: string;
  /** Size in bytes. */
  size: number;
  /** What the image is. */
  kind: ImageKind;
  /** ESP32 apps: `project_name` of the app descriptor. */
  projectName?: string;
  /** ESP32 apps: `idf_ver` of the app descriptor. */
  idfVersion?: string;
  /** ESP32 apps: `chip_id` of the image header (always 0, ESP32). */
  chipId?: number;
  /** When the image was added, ISO 8601. */
  addedAt: string;
  /** ECDSA P-256 signature `r‖s` over `sha256`, lower-case hex (128 digits), when signed. */
  signature?: string;
}

/** Options of {@linkcode Catalog.addImage}. */
export interface AddImageOptions {
  /** Display name; default `<product>-<version>.bin` (`<product>-<version>` for a file). */
  name?: string;
  /** Product; for an ESP32 app, defaults to and must equal the descriptor's project name. */
  product?: string;
  /** Version; for an ESP32 app, defaults to and must equal the descriptor's version. */
  version?: string;
  /**
   * Accept bytes that are not an ESP32 app image, stored as kind `file`; `product` and `version`
   * are then required. Bytes that are an ESP32 app image are still catalogued as one (and still
   * refused when built for another chip).
   */
  generic?: boolean;
  /** ECDSA P-256 signature `r‖s` over the image's SHA-256, hex (128 digits). */
  signature?: string;
}

/** One finished transfer, as the sender records it. */
export interface TransferRecord {
  /** Transfer id of the MANIFEST. */
  transferId: number;
  /** Device the image went to. */
  deviceId: string;
  /** SHA-256 of the image sent. */
  sha256: string;
  /** Product of the image. */
  product: string;
  /** Version of the image. */
  version: string;
  /** Payload bytes sent, resends included. */
  bytes: number;
  /** First byte sent (non-zero after a resume). */
  startOffset: number;
  /** Duration in seconds. */
  seconds: number;
  /** Chunks sent again. */
  resends: number;
  /** How it ended: `VERIFIED`, `HASH_MISMATCH`, `TRANSFER_ABORTED`, `DELIVERED_UNVERIFIED`, ... */
  outcome: string;
  /** Readable detail. */
  detail?: string;
  /** Start, ISO 8601. */
  startedAt: string;
  /** End, ISO 8601. */
  endedAt: string;
  /** Sender instance that ran it. */
  senderId: string;
}

/** One STATUS a device reported (protocol §4.6), as the sender records it. */
export interface DeviceStatusRecord {
  /** Reporting device. */
  deviceId: string;
  /** Status name, e.g. `BOOTED`, `ROLLED_BACK`. */
  status: string;
  /** SHA-256 of the image the status is about. */
  sha256: string;
  /** Version of that image. */
  version: string;
  /** Readable detail from the device. */
  detail: string;
  /** When it was received, ISO 8601. */
  at: string;
}

/** Options of {@linkcode Catalog.open}. */
export interface CatalogOptions {
  /** Bytes of whole images kept in memory (least recently used evicted first); default 64 MiB. */
  cacheBytes?: number;
  /** Transfer and device status records kept, each; default {@linkcode HISTORY_LIMIT}. */
  historyLimit?: number;
}

/** What KV holds under an image key. `pieceBytes` is stored so the piece size may change. */
interface StoredImage {
  meta: ImageMeta;
  pieceBytes: number;
  pieceCount: number;
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
  /** Bytes now held by the cache. */
  cachedBytes(): number;
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
const SHA256_PREFIX = new RegExp(`^[0-9a-f]{${MIN_SHA_PREFIX_CHARS},63}$`);
const HEX = /^[0-9a-f]*$/;
const UTF8 = new TextEncoder();
// deno-lint-ignore no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

/**
 * The firmware catalog over one Deno KV store. Open it with {@linkcode Catalog.open}; close it
 * with {@linkcode Catalog.close}. Safe for concurrent use within one process; several processes
 * may share one KV file (adds of different images and history writes never conflict).
 */
export class Catalog {
  readonly #kv: Deno.Kv;
  readonly #cacheLimit: number;
  readonly #historyLimit: number;
  readonly #instanceId = crypto.randomUUID();
  /** Whole images, least recently used first (Map keeps insertion order). */
  readonly #cache = new Map<string, Uint8Array>();
  #cacheUsed = 0;
  /** Reads from KV under way, so concurrent readers of one image share one read. */
  readonly #loading = new Map<string, { promise: Promise<Uint8Array> }>();
  /** Adds and removes of one SHA-256 run one after another within this process. */
  readonly #locks = new Map<string, Promise<void>>();
  #seq = 0;
  #transferWrites = 0;
  #statusWrites = 0;
  #imageLoads = 0;
  #pieceCommitHook: ((commit: number) => void | Promise<void>) | undefined;
  #closed = false;

  static {
    internalsOf = (c) => ({
      kv: c.#kv,
      imageLoads: () => c.#imageLoads,
      writePieces: (sha256, bytes) => c.#writePieces(sha256, bytes),
      countPieces: async (sha256) => {
        let n = 0;
        for await (const _ of c.#kv.list({ prefix: piecePrefix(sha256) })) n++;
        return n;
      },
      setPieceCommitHook: (hook) => {
        c.#pieceCommitHook = hook;
      },
      cachedBytes: () => c.#cacheUsed,
    });
  }

  private constructor(kv: Deno.Kv, cacheBytes: number, historyLimit: number) {
    this.#kv = kv;
    this.#cacheLimit = cacheBytes;
    this.#historyLimit = historyLimit;
  }

  /**
   * Opens a catalog. `path` undefined or `":memory:"` gives a fresh in-memory store; any other
   * value is a KV file (its folder must exist). Throws {@linkcode CatalogError} `STORAGE_ERROR`
   * when the store cannot be opened, `INVALID_ARGUMENT` for bad options.
   */
  static async open(path?: string, options: CatalogOptions = {}): Promise<Catalog> {
    const cacheBytes = options.cacheBytes ?? DEFAULT_CACHE_BYTES;
    const historyLimit = options.historyLimit ?? HISTORY_LIMIT;
    if (!Number.isSafeInteger(cacheBytes) || cacheBytes < 0) {
      throw new CatalogError(
        "INVALID_ARGUMENT",
        `Cannot open catalog: cacheBytes ${cacheBytes} is not a non-negative integer`,
      );
    }
    if (!Number.isSafeInteger(historyLimit) || historyLimit < 1) {
      throw new CatalogError(
        "INVALID_ARGUMENT",
        `Cannot open catalog: historyLimit ${historyLimit} is not a positive integer`,
      );
    }
    const where = path === undefined || path === ":memory:" ? ":memory:" : path;
    let kv: Deno.Kv;
    try {
      kv = await Deno.openKv(where);
    } catch (e) {
      throw new CatalogError(
        "STORAGE_ERROR",
        `Cannot open catalog: KV store "${where}" failed to open: ${errorText(e)}`,
        { cause: e },
      );
    }
    return new Catalog(kv, cacheBytes, historyLimit);
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
    if (bytes.length === 0) throw invalid("Cannot add image: the image is empty");
    if (bytes.length > MAX_IMAGE_BYTES) {
      throw invalid(
        `Cannot add image: size ${bytes.length} exceeds the largest image of ${MAX_IMAGE_BYTES} bytes`,
      );
    }
    const app = recogniseApp(bytes, options.generic === true);
    let product: string;
    let version: string;
    if (app) {
      product = fromDescriptor(options.product, {
        what: "product",
        actual: app.app.projectName,
        field: "project name",
      });
      version = fromDescriptor(options.version, {
        what: "version",
        actual: app.app.version,
        field: "version",
      });
    } else {
      if (!options.product || !options.version) {
        throw invalid("Cannot add image: a generic file needs both a product and a version");
      }
      product = options.product;
      version = options.version;
    }
    checkProduct(product);
    checkVersion(version);
    const name = options.name ?? (app ? `${product}-${version}.bin` : `${product}-${version}`);
    checkName(name);
    const signature = options.signature === undefined
      ? undefined
      : normaliseSignature(options.signature);
    const sha256 = sha256Hex(bytes);
    const meta: ImageMeta = {
      sha256,
      name,
      product,
      version,
      size: bytes.length,
      kind: app ? "esp32-app" : "file",
      ...(app
        ? {
          projectName: app.app.projectName,
          idfVersion: app.app.idfVersion,
          chipId: app.header.chipId,
        }
        : {}),
      addedAt: new Date().toISOString(),
      ...(signature === undefined ? {} : { signature }),
    };

    return await this.#withLock(sha256, async () => {
      await this.#assertAddable(meta);
      await this.#writePieces(sha256, bytes);
      const stored: StoredImage = {
        meta,
        pieceBytes: PIECE_BYTES,
        pieceCount: Math.ceil(bytes.length / PIECE_BYTES),
      };
      const result = await this.#kv.atomic()
        .check({ key: indexKey(product, version), versionstamp: null })
        .check({ key: imageKey(sha256), versionstamp: null })
        .set(imageKey(sha256), stored)
        .set(indexKey(product, version), sha256)
        .commit();
      // Lost a race with another process: report what it added. Our pieces stay as garbage
      // (the other process may be writing the same pieces; deleting them could hurt it).
      if (!result.ok) await this.#assertAddable(meta);
      if (!result.ok) {
        throw new CatalogError("STORAGE_ERROR", "Cannot add image: the commit was refused");
      }
      return meta;
    });
  }

  /** Lists images, all or of one product, by product then newest version first. */
  async list(product?: string): Promise<ImageMeta[]> {
    this.#assertOpen();
    const out: ImageMeta[] = [];
    for await (const e of this.#kv.list<StoredImage>({ prefix: imagePrefix() })) {
      if (product === undefined || e.value.meta.product === product) out.push(e.value.meta);
    }
    return out.sort((a, b) =>
      a.product < b.product ? -1 : a.product > b.product ? 1 : compareVersions(b.version, a.version)
    );
  }

  /** Returns an image's metadata by full SHA-256 (either case), or `null`. */
  async get(sha256: string): Promise<ImageMeta | null> {
    this.#assertOpen();
    const sha = sha256.toLowerCase();
    if (!SHA256_HEX.test(sha)) return null;
    return (await this.#kv.get<StoredImage>(imageKey(sha))).value?.meta ?? null;
  }

  /**
   * Resolves a product's version to an image: `version` empty, `"latest"` or undefined means the
   * newest version by {@linkcode compareVersions} (semver precedence; semver versions above
   * others; plain string order otherwise); anything else is an exact version. `null` if none.
   */
  async resolve(product: string, version?: string): Promise<ImageMeta | null> {
    this.#assertOpen();
    if (version && version !== "latest") {
      const sha = (await this.#kv.get<string>(indexKey(product, version))).value;
      return sha === null ? null : await this.get(sha);
    }
    let best: { version: string; sha: string } | undefined;
    for await (const e of this.#kv.list<string>({ prefix: indexPrefix(product) })) {
      const v = e.key[2] as string;
      if (!best || compareVersions(v, best.version) > 0) best = { version: v, sha: e.value };
    }
    return best ? await this.get(best.sha) : null;
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
      const found: ImageMeta[] = [];
      const iter = this.#kv.list<StoredImage>(imageShaPrefixRange(lower), { limit: 2 });
      for await (const e of iter) found.push(e.value.meta);
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
    if (cached) {
      this.#cache.delete(sha);
      this.#cache.set(sha, cached);
      return Promise.resolve(cached);
    }
    const pending = this.#loading.get(sha);
    if (pending) return pending.promise;
    // The entry is the identity of this read: a removal while loading replaces or drops it, and
    // then the bytes must not be cached.
    const entry = {} as { promise: Promise<Uint8Array> };
    entry.promise = (async () => {
      try {
        const bytes = await this.#load(sha);
        if (this.#loading.get(sha) === entry) this.#remember(sha, bytes);
        return bytes;
      } finally {
        if (this.#loading.get(sha) === entry) this.#loading.delete(sha);
      }
    })();
    this.#loading.set(sha, entry);
    return entry.promise;
  }

  /**
   * Removes an image found by {@linkcode Catalog.find}: metadata and index entry in one commit,
   * then every piece. Returns the removed metadata. Throws {@linkcode CatalogError} `NOT_FOUND`,
   * `AMBIGUOUS_REF`, `INVALID_ARGUMENT`.
   */
  async remove(ref: string): Promise<ImageMeta> {
    this.#assertOpen();
    const meta = await this.find(ref);
    if (!meta) {
      throw new CatalogError("NOT_FOUND", `Cannot remove image: no image matches "${ref}"`);
    }
    return await this.#withLock(meta.sha256, async () => {
      const stored = await this.#kv.get<StoredImage>(imageKey(meta.sha256));
      if (stored.value === null) {
        throw new CatalogError("NOT_FOUND", `Cannot remove image: no image matches "${ref}"`);
      }
      const { product, version } = stored.value.meta;
      const index = await this.#kv.get<string>(indexKey(product, version));
      const op = this.#kv.atomic().check(stored).delete(imageKey(meta.sha256));
      if (index.value === meta.sha256) op.check(index).delete(indexKey(product, version));
      const result = await op.commit();
      if (!result.ok) {
        throw new CatalogError(
          "STORAGE_ERROR",
          `Cannot remove image: "${ref}" changed while being removed; try again`,
        );
      }
      this.#forget(meta.sha256);
      await this.#deleteAll(piecePrefix(meta.sha256));
      return stored.value.meta;
    });
  }

  /** Records a finished transfer. Only the newest `historyLimit` records are kept. */
  async recordTransfer(record: TransferRecord): Promise<void> {
    this.#assertOpen();
    await this.#kv.set(transferKey(Date.now(), this.#instanceId, this.#seq++), { ...record });
    if (++this.#transferWrites % this.#pruneEvery() === 0) {
      await this.#prune(transferPrefix());
    }
  }

  /** Lists transfer records, newest first, at most `limit` (default 100). */
  async listTransfers(limit = DEFAULT_LIST_LIMIT): Promise<TransferRecord[]> {
    this.#assertOpen();
    return await this.#newest<TransferRecord>(transferPrefix(), limit, "transfers");
  }

  /** Records a device status report. Only the newest `historyLimit` records are kept. */
  async recordDeviceStatus(record: DeviceStatusRecord): Promise<void> {
    this.#assertOpen();
    await this.#kv.set(deviceStatusKey(Date.now(), this.#instanceId, this.#seq++), { ...record });
    if (++this.#statusWrites % this.#pruneEvery() === 0) {
      await this.#prune(deviceStatusPrefix());
    }
  }

  /** Lists device status records, newest first, at most `limit` (default 100). */
  async listDeviceStatus(limit = DEFAULT_LIST_LIMIT): Promise<DeviceStatusRecord[]> {
    this.#assertOpen();
    return await this.#newest<DeviceStatusRecord>(deviceStatusPrefix(), limit, "device status");
  }

  /** Closes the KV store and drops the cache. Calling it twice is harmless. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#cache.clear();
    this.#cacheUsed = 0;
    this.#kv.close();
  }

  #assertOpen(): void {
    if (this.#closed) throw new CatalogError("STORAGE_ERROR", "Cannot use catalog: it is closed");
  }

  async #assertAddable(meta: ImageMeta): Promise<void> {
    const [image, index] = await this.#kv.getMany<[StoredImage, string]>([
      imageKey(meta.sha256),
      indexKey(meta.product, meta.version),
    ]);
    if (image.value !== null) {
      const had = image.value.meta;
      throw new CatalogError(
        "DUPLICATE_IMAGE",
        `Cannot add image: the same bytes are already catalogued as "${had.product}@${had.version}" (sha256 ${
          had.sha256.slice(0, 12)
        })`,
      );
    }
    if (index.value !== null) {
      throw new CatalogError(
        "DUPLICATE_VERSION",
        `Cannot add image: product "${meta.product}" already has version "${meta.version}" (sha256 ${
          index.value.slice(0, 12)
        })`,
      );
    }
  }

  async #writePieces(sha256: string, bytes: Uint8Array): Promise<void> {
    const count = Math.ceil(bytes.length / PIECE_BYTES);
    let commit = 0;
    for (let first = 0; first < count; first += PIECES_PER_COMMIT) {
      const op = this.#kv.atomic();
      for (let i = first; i < Math.min(first + PIECES_PER_COMMIT, count); i++) {
        // slice(), not subarray(): KV serialises a view's whole backing buffer.
        op.set(pieceKey(sha256, i), bytes.slice(i * PIECE_BYTES, (i + 1) * PIECE_BYTES));
      }
      const result = await op.commit();
      if (!result.ok) {
        throw new CatalogError("STORAGE_ERROR", "Cannot add image: a piece commit was refused");
      }
      await this.#pieceCommitHook?.(commit++);
    }
  }

  async #load(sha: string): Promise<Uint8Array> {
    const stored = SHA256_HEX.test(sha)
      ? (await this.#kv.get<StoredImage>(imageKey(sha))).value
      : null;
    if (stored === null) {
      throw new CatalogError("NOT_FOUND", `Cannot read image: no image has sha256 "${sha}"`);
    }
    this.#imageLoads++;
    const { size } = stored.meta;
    const out = new Uint8Array(size);
    let next = 0;
    let offset = 0;
    let complete = true;
    for await (const e of this.#kv.list<Uint8Array>({ prefix: piecePrefix(sha) })) {
      const piece = e.value;
      if (e.key[2] !== next || offset + piece.length > size) {
        complete = false;
        break;
      }
      out.set(piece, offset);
      offset += piece.length;
      next++;
    }
    if (!complete || offset !== size || next !== stored.pieceCount || sha256Hex(out) !== sha) {
      // A concurrent removal deletes metadata before pieces: report that as not found.
      if ((await this.#kv.get(imageKey(sha))).value === null) {
        throw new CatalogError("NOT_FOUND", `Cannot read image: no image has sha256 "${sha}"`);
      }
      throw new CatalogError(
        "CORRUPT_IMAGE",
        `Cannot read image: the stored pieces of "${sha}" do not add up to its size and SHA-256; remove it and add it again`,
      );
    }
    return out;
  }

  #remember(sha: string, bytes: Uint8Array): void {
    if (bytes.length > this.#cacheLimit) return;
    for (const [key, value] of this.#cache) {
      if (this.#cacheUsed + bytes.length <= this.#cacheLimit) break;
      this.#cache.delete(key);
      this.#cacheUsed -= value.length;
    }
    this.#cache.set(sha, bytes);
    this.#cacheUsed += bytes.length;
  }

  #forget(sha: string): void {
    const cached = this.#cache.get(sha);
    if (cached) {
      this.#cache.delete(sha);
      this.#cacheUsed -= cached.length;
    }
    this.#loading.delete(sha);
  }

  async #withLock<T>(sha: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#locks.get(sha) ?? Promise.resolve();
    let release!: () => void;
    const mine = previous.then(() => new Promise<void>((resolve) => (release = resolve)));
    this.#locks.set(sha, mine);
    await previous;
    try {
      return await fn();
    } finally {
      release();
      if (this.#locks.get(sha) === mine) this.#locks.delete(sha);
    }
  }

  async #deleteAll(
    prefix: Deno.KvKey,
    { skip = 0, reverse = false }: { skip?: number; reverse?: boolean } = {},
  ): Promise<void> {
    let batch: Deno.KvKey[] = [];
    let seen = 0;
    for await (const e of this.#kv.list({ prefix }, { reverse })) {
      if (seen++ < skip) continue;
      batch.push(e.key);
      if (batch.length === DELETES_PER_COMMIT) {
        await this.#deleteKeys(batch);
        batch = [];
      }
    }
    if (batch.length > 0) await this.#deleteKeys(batch);
  }

  async #deleteKeys(keys: Deno.KvKey[]): Promise<void> {
    const op = this.#kv.atomic();
    for (const key of keys) op.delete(key);
    await op.commit();
  }

  #pruneEvery(): number {
    return Math.min(HISTORY_PRUNE_EVERY, this.#historyLimit);
  }

  async #prune(prefix: Deno.KvKey): Promise<void> {
    await this.#deleteAll(prefix, { skip: this.#historyLimit, reverse: true });
  }

  async #newest<T>(prefix: Deno.KvKey, limit: number, what: string): Promise<T[]> {
    if (!Number.isSafeInteger(limit) || limit < 1) {
      throw invalid(`Cannot list ${what}: limit ${limit} is not a positive integer`);
    }
    const out: T[] = [];
    for await (const e of this.#kv.list<T>({ prefix }, { reverse: true, limit })) {
      out.push(e.value);
    }
    return out;
  }
}

/**
 * Decides whether bytes are an ESP32 app image: returns the parsed image, or `null` for a file
 * that is not one and may be stored as `generic`. Throws `WRONG_CHIP` for any `0xE9` image built
 * for another chip (whatever `generic` says), `NOT_AN_APP_IMAGE` otherwise when not `generic`.
 */
function recogniseApp(bytes: Uint8Array, generic: boolean): EspAppImage | null {
  const notApp = (why: string) =>
    new CatalogError(
      "NOT_AN_APP_IMAGE",
      `Cannot add image: it is not an ESP32 app image (${why})`,
    );
  if (!hasEspImageMagic(bytes)) {
    if (generic) return null;
    throw notApp(
      `first byte is 0x${bytes[0].toString(16).toUpperCase().padStart(2, "0")}, not 0xE9`,
    );
  }
  try {
    const header = readEspImageHeader(bytes);
    if (header.chipId !== ESP_CHIP_ID_ESP32) {
      throw new CatalogError(
        "WRONG_CHIP",
        `Cannot add image: it is built for ${
          espChipName(header.chipId)
        } (chip id ${header.chipId}), this catalog serves ESP32 (chip id ${ESP_CHIP_ID_ESP32})`,
      );
    }
    return parseEspAppImage(bytes);
  } catch (e) {
    if (!(e instanceof EspImageError)) throw e;
    if (generic) return null;
    throw notApp(e.reason);
  }
}

/** Returns the declared value, or the descriptor's when none is declared; refuses a contradiction. */
function fromDescriptor(
  declared: string | undefined,
  { what, actual, field }: { what: "product" | "version"; actual: string; field: string },
): string {
  if (declared === undefined || declared === "") return actual;
  if (declared !== actual) {
    throw new CatalogError(
      what === "product" ? "PRODUCT_MISMATCH" : "VERSION_MISMATCH",
      `Cannot add image: declared ${what} "${declared}" contradicts the app descriptor ${field} "${actual}"`,
    );
  }
  return declared;
}

function checkProduct(product: string): void {
  const n = UTF8.encode(product).length;
  if (n < 1 || n > MAX_PRODUCT_BYTES || CONTROL_CHARS.test(product)) {
    throw invalid(
      `Cannot add image: product "${product}" must be 1 to ${MAX_PRODUCT_BYTES} bytes without control characters`,
    );
  }
}

function checkVersion(version: string): void {
  const n = UTF8.encode(version).length;
  if (n < 1 || n > MAX_VERSION_BYTES || CONTROL_CHARS.test(version) || version.includes("@")) {
    throw invalid(
      `Cannot add image: version "${version}" must be 1 to ${MAX_VERSION_BYTES} bytes without "@" or control characters`,
    );
  }
  if (version === "latest") {
    throw invalid('Cannot add image: version "latest" is reserved for the newest version');
  }
}

function checkName(name: string): void {
  const n = UTF8.encode(name).length;
  if (n < 1 || n > MAX_NAME_BYTES || CONTROL_CHARS.test(name)) {
    throw invalid(
      `Cannot add image: name "${name}" must be 1 to ${MAX_NAME_BYTES} bytes without control characters`,
    );
  }
}

function normaliseSignature(signature: string): string {
  const hex = signature.toLowerCase();
  if (hex.length !== SIGNATURE_BYTES * 2 || !HEX.test(hex)) {
    throw invalid(
      `Cannot add image: signature must be ${
        SIGNATURE_BYTES * 2
      } hex digits (ECDSA P-256 r‖s), got ${signature.length} characters`,
    );
  }
  return hex;
}

function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

function invalid(message: string): CatalogError {
  return new CatalogError("INVALID_ARGUMENT", message);
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
