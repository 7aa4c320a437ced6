/**
 * Storage of images in Deno KV: pieces, metadata and the (product, version) index, with the
 * invariants the catalog promises:
 * - An image's bytes live in pieces of at most `PIECE_BYTES` under its SHA-256, written in
 *   several commits (Deno KV allows at most 1000 mutations and 800 KiB per commit).
 * - Its metadata and index entry are committed together, in one atomic commit that checks the
 *   index entry is absent, and only after every piece is written. An image is visible exactly
 *   when its metadata is, so an interrupted upload is never visible; its pieces are garbage that
 *   adding the same bytes again overwrites.
 * - Removal deletes metadata and index entry first (the image disappears atomically), then the
 *   pieces.
 * - An add under way keeps an upload mark (`["upload", sha]`) holding the time of its last piece
 *   commit, set in every piece commit and deleted by the commit that makes the image visible.
 *   {@linkcode ImageStore.collectGarbage} deletes pieces with no image only when their mark is
 *   older than a grace period (or missing), and checks the mark in every delete commit, so an add
 *   in progress in another process is never touched.
 *
 * It only stores and loads: which images are acceptable is `admission.ts`'s to decide.
 * @module
 */

import { CatalogError } from "./errors.ts";
import { deleteAll } from "./_kv_delete.ts";
import { type ImageMeta, sha256Hex } from "./image_meta.ts";
import {
  allPiecesPrefix,
  imageKey,
  imagePrefix,
  imageShaPrefixRange,
  indexKey,
  indexPrefix,
  pieceKey,
  piecePrefix,
  uploadKey,
  uploadPrefix,
} from "./kv_keys.ts";
import { DELETES_PER_COMMIT, PIECE_BYTES, PIECES_PER_COMMIT } from "./limits.ts";

/** What KV holds under an image key. `pieceBytes` is stored so the piece size may change. */
interface StoredImage {
  meta: ImageMeta;
  pieceBytes: number;
  pieceCount: number;
}

/** What KV holds under an upload mark: when the add last made progress (ms since the epoch). */
interface UploadMark {
  at: number;
}

/** Pieces of one SHA-256 that no image owns. */
export interface OrphanPieces {
  sha256: string;
  pieces: number;
  bytes: number;
  /** Last progress of the add that wrote them (ISO 8601); absent when it left no mark. */
  lastProgress?: string;
}

/** What {@linkcode ImageStore.collectGarbage} found and did. */
export interface GarbageReport {
  /** Orphan pieces deleted (or, in a dry run, that would be). */
  collected: OrphanPieces[];
  /** Orphan pieces left alone: their add made progress within the grace period. */
  held: OrphanPieces[];
  /** Upload marks without pieces or image, deleted (or that would be). */
  staleMarks: number;
}

/** The image half of the catalog's KV store. */
export class ImageStore {
  /** How many times an image's bytes were read from KV. */
  loads = 0;
  /** Called after every piece commit of an upload (with its 0-based number); tests may throw. */
  pieceCommitHook: ((commit: number) => void | Promise<void>) | undefined;

  /** A store over `kv`. */
  constructor(readonly kv: Deno.Kv) {}

  /** Throws `DUPLICATE_IMAGE` or `DUPLICATE_VERSION` when `meta` cannot be added. */
  async assertAddable(meta: ImageMeta): Promise<void> {
    const [image, index] = await this.kv.getMany<[StoredImage, string]>([
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

  /** Stores an image: every piece, then metadata and index entry in one checked commit. */
  async add(meta: ImageMeta, bytes: Uint8Array): Promise<void> {
    await this.assertAddable(meta);
    await this.writePieces(meta.sha256, bytes);
    const stored: StoredImage = {
      meta,
      pieceBytes: PIECE_BYTES,
      pieceCount: Math.ceil(bytes.length / PIECE_BYTES),
    };
    const result = await this.kv.atomic()
      .check({ key: indexKey(meta.product, meta.version), versionstamp: null })
      .check({ key: imageKey(meta.sha256), versionstamp: null })
      .set(imageKey(meta.sha256), stored)
      .set(indexKey(meta.product, meta.version), meta.sha256)
      .delete(uploadKey(meta.sha256))
      .commit();
    if (result.ok) return;
    // Lost a race with another process: report what it added. Our pieces stay as garbage
    // (the other process may be writing the same pieces; deleting them could hurt it).
    await this.assertAddable(meta);
    throw new CatalogError("STORAGE_ERROR", "Cannot add image: the commit was refused");
  }

  /** Writes an image's pieces without its metadata, refreshing its upload mark in each commit. */
  async writePieces(sha256: string, bytes: Uint8Array): Promise<void> {
    const count = Math.ceil(bytes.length / PIECE_BYTES);
    let commit = 0;
    for (let first = 0; first < count; first += PIECES_PER_COMMIT) {
      const op = this.kv.atomic().set(uploadKey(sha256), { at: Date.now() } satisfies UploadMark);
      for (let i = first; i < Math.min(first + PIECES_PER_COMMIT, count); i++) {
        // slice(), not subarray(): KV serialises a view's whole backing buffer.
        op.set(pieceKey(sha256, i), bytes.slice(i * PIECE_BYTES, (i + 1) * PIECE_BYTES));
      }
      const result = await op.commit();
      if (!result.ok) {
        throw new CatalogError("STORAGE_ERROR", "Cannot add image: a piece commit was refused");
      }
      await this.pieceCommitHook?.(commit++);
    }
  }

  /** Counts the piece keys stored under an image's SHA-256. */
  async countPieces(sha256: string): Promise<number> {
    let n = 0;
    for await (const _ of this.kv.list({ prefix: piecePrefix(sha256) })) n++;
    return n;
  }

  /** Every image's metadata, in SHA-256 order. */
  async list(): Promise<ImageMeta[]> {
    const out: ImageMeta[] = [];
    for await (const e of this.kv.list<StoredImage>({ prefix: imagePrefix() })) {
      out.push(e.value.meta);
    }
    return out;
  }

  /** Metadata of a lower-case full SHA-256, or null. */
  async get(sha256: string): Promise<ImageMeta | null> {
    return (await this.kv.get<StoredImage>(imageKey(sha256))).value?.meta ?? null;
  }

  /** Metadata of at most `limit` images whose SHA-256 starts with `hexPrefix` (lower case). */
  async withShaPrefix(hexPrefix: string, limit: number): Promise<ImageMeta[]> {
    const found: ImageMeta[] = [];
    for await (const e of this.kv.list<StoredImage>(imageShaPrefixRange(hexPrefix), { limit })) {
      found.push(e.value.meta);
    }
    return found;
  }

  /** SHA-256 of a product's version, or null. */
  async indexed(product: string, version: string): Promise<string | null> {
    return (await this.kv.get<string>(indexKey(product, version))).value;
  }

  /** Every version of a product with its SHA-256, in key order. */
  async versions(product: string): Promise<Array<{ version: string; sha256: string }>> {
    const out: Array<{ version: string; sha256: string }> = [];
    for await (const e of this.kv.list<string>({ prefix: indexPrefix(product) })) {
      out.push({ version: e.key[2] as string, sha256: e.value });
    }
    return out;
  }

  /**
   * Reads an image's bytes from its pieces and checks them against its size and SHA-256. Throws
   * `NOT_FOUND` (also when a removal is under way) or `CORRUPT_IMAGE`.
   */
  async load(sha: string): Promise<Uint8Array> {
    const stored = (await this.kv.get<StoredImage>(imageKey(sha))).value;
    if (stored === null) throw notFound(sha);
    this.loads++;
    const { size } = stored.meta;
    const out = new Uint8Array(size);
    let next = 0;
    let offset = 0;
    let complete = true;
    for await (const e of this.kv.list<Uint8Array>({ prefix: piecePrefix(sha) })) {
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
      if ((await this.kv.get(imageKey(sha))).value === null) throw notFound(sha);
      throw new CatalogError(
        "CORRUPT_IMAGE",
        `Cannot read image: the stored pieces of "${sha}" do not add up to its size and SHA-256; remove it and add it again`,
      );
    }
    return out;
  }

  /**
   * Removes an image: metadata and index entry in one commit, then every piece. Returns the
   * removed metadata, or null when it is not stored. `ref` names it in error messages.
   */
  async remove(sha256: string, ref: string): Promise<ImageMeta | null> {
    const stored = await this.kv.get<StoredImage>(imageKey(sha256));
    if (stored.value === null) return null;
    const { product, version } = stored.value.meta;
    const index = await this.kv.get<string>(indexKey(product, version));
    const op = this.kv.atomic().check(stored).delete(imageKey(sha256));
    if (index.value === sha256) op.check(index).delete(indexKey(product, version));
    const result = await op.commit();
    if (!result.ok) {
      throw new CatalogError(
        "STORAGE_ERROR",
        `Cannot remove image: "${ref}" changed while being removed; try again`,
      );
    }
    return stored.value.meta;
  }

  /**
   * Finds pieces that no image owns and deletes those whose add made no progress for `graceMs`
   * (all of them when their add left no mark); `dryRun` only reports. A delete commit checks that
   * the image is still absent and the upload mark unchanged, so an add that starts or goes on in
   * another process meanwhile stops the collection of its pieces.
   */
  async collectGarbage(
    { graceMs, dryRun, now }: { graceMs: number; dryRun: boolean; now: number },
  ): Promise<GarbageReport> {
    const report: GarbageReport = { collected: [], held: [], staleMarks: 0 };
    const withPieces = new Set<string>();
    for (let sha = await this.#nextPieceSha(undefined); sha; sha = await this.#nextPieceSha(sha)) {
      withPieces.add(sha);
      const [image, mark] = await this.kv.getMany<[StoredImage, UploadMark]>([
        imageKey(sha),
        uploadKey(sha),
      ]);
      if (image.value !== null) continue;
      const orphan: OrphanPieces = { sha256: sha, pieces: 0, bytes: 0 };
      for await (const e of this.kv.list<Uint8Array>({ prefix: piecePrefix(sha) })) {
        orphan.pieces++;
        orphan.bytes += e.value.length;
      }
      if (mark.value) orphan.lastProgress = new Date(mark.value.at).toISOString();
      if (mark.value && now - mark.value.at < graceMs) {
        report.held.push(orphan);
        continue;
      }
      if (!dryRun && !(await this.#deleteOrphan(sha, mark))) continue;
      report.collected.push(orphan);
    }
    for await (const e of this.kv.list<UploadMark>({ prefix: uploadPrefix() })) {
      const sha = e.key[1] as string;
      if (withPieces.has(sha) || now - e.value.at < graceMs) continue;
      report.staleMarks++;
      if (!dryRun) await this.kv.atomic().check(e).delete(e.key).commit();
    }
    return report;
  }

  /** The first SHA-256 after `after` (or the first) that has pieces, or undefined. */
  async #nextPieceSha(after: string | undefined): Promise<string | undefined> {
    const prefix = allPiecesPrefix();
    // `${sha}\0` sorts after every key [piece, sha, index] and before the next SHA-256.
    const selector = after === undefined
      ? { prefix }
      : { prefix, start: [...prefix, `${after}\0`] };
    for await (const e of this.kv.list(selector, { limit: 1 })) return e.key[1] as string;
    return undefined;
  }

  /** Deletes an orphan's pieces and mark while image and mark stay as read; false if they moved. */
  async #deleteOrphan(sha: string, mark: Deno.KvEntryMaybe<UploadMark>): Promise<boolean> {
    let batch: Deno.KvKey[] = [];
    const commit = async (keys: Deno.KvKey[]) => {
      const op = this.kv.atomic().check({ key: imageKey(sha), versionstamp: null }).check(mark);
      for (const key of keys) op.delete(key);
      return (await op.commit()).ok;
    };
    for await (const e of this.kv.list({ prefix: piecePrefix(sha) })) {
      batch.push(e.key);
      if (batch.length === DELETES_PER_COMMIT) {
        if (!(await commit(batch))) return false;
        batch = [];
      }
    }
    return await commit([...batch, uploadKey(sha)]);
  }

  /** Deletes every piece of an image (after its metadata is gone). */
  async deletePieces(sha256: string): Promise<void> {
    await deleteAll(this.kv, piecePrefix(sha256));
  }
}

function notFound(sha: string): CatalogError {
  return new CatalogError("NOT_FOUND", `Cannot read image: no image has sha256 "${sha}"`);
}
