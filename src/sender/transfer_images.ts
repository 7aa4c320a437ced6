/**
 * Image preparation: turns catalog metadata into the {@link TransferImage} a transfer sends (the
 * bytes, a CRC-32 per chunk and the manifest signature). The bytes are leased from the catalog
 * for the transfer's lifetime, so every image byte the sender holds counts toward the catalog's
 * one memory bound (`cache.maxBytes`); what is kept here per (SHA-256, chunk size) is only the
 * CRCs and the signature, never the bytes. CRCs are computed lazily, chunk by chunk as they are
 * first sent ({@link ChunkCrcs}): a REQUEST with an unusual chunk size used to cost a CRC pass
 * over the whole image (2 ms on 16 MiB, synchronous) before anything was sent.
 *
 * The signature of an image signed offline (`image add --signature`) is served as stored, so the
 * private key never has to be on the sender; only an image without one is signed here, when the
 * sender has a key (docs/protocol.md §4.2).
 * @module
 */

import { CHUNK_HEADER_BYTES, crc32, fromHex, writeChunkHeader } from "../protocol/mod.ts";
import type { ImageLease, ImageMeta } from "../catalog/mod.ts";

/** The image a transfer sends, with its bytes and per-chunk CRCs (shared by all transfers). */
export interface TransferImage {
  sha256: Uint8Array;
  shaHex: string;
  name: string;
  product: string;
  version: string;
  kind: "esp32-app" | "file";
  bytes: Uint8Array;
  /**
   * CRC-32 of chunk `index` at the transfer's chunk size: computed when the chunk is first sent
   * and kept per image and chunk size, so an unusual chunk size costs no pass over the image.
   */
  crc(index: number): number;
  /** ECDSA signature of the manifest, or empty. */
  signature: Uint8Array;
  /** Ends the transfer's hold on the bytes (the catalog's memory bound); called once it closes. */
  release?: () => void;
}

/**
 * The CHUNK (§5) carrying chunk `index` of `image` in chunks of `chunkSize`, under `transferId`
 * (a transfer's id, or a stream's on its image topic, §11.2). With `head` (CHUNK_HEADER_BYTES
 * long) the header is written into it and the payload is returned, a view of the image's bytes,
 * so the caller sends the two parts without a copy. With `head` null a new message holding both
 * is returned; its payload is `message.length - CHUNK_HEADER_BYTES` bytes.
 */
export function writeImageChunk(
  image: TransferImage,
  chunkSize: number,
  transferId: number,
  index: number,
  head: Uint8Array | null,
): Uint8Array {
  const offset = index * chunkSize;
  const payload = image.bytes.subarray(offset, Math.min(offset + chunkSize, image.bytes.length));
  const header = { transferId, index, offset, length: payload.length, crc32: image.crc(index) };
  if (head) {
    writeChunkHeader(head, header);
    return payload;
  }
  const message = new Uint8Array(CHUNK_HEADER_BYTES + payload.length);
  writeChunkHeader(message, header);
  message.set(payload, CHUNK_HEADER_BYTES);
  return message;
}

/** (SHA-256, chunk size) pairs whose CRCs and signature are kept; older ones are made again. */
export const PREPARED_IMAGES = 16;

/** What is kept of a prepared image: no bytes. */
interface Prepared {
  crcs: ChunkCrcs;
  signature: Promise<Uint8Array>;
}

/** Where image bytes come from: leased from the catalog, or read (test stand-ins). */
export interface ImageSource {
  /** Leases the bytes for as long as a transfer uses them (the catalog's memory bound). */
  leaseImage?(sha256: string): Promise<ImageLease>;
  /** Reads the bytes; used when `leaseImage` is absent (stand-in catalogs in unit tests). */
  readImage(sha256: string): Promise<Uint8Array>;
  /** Signs images the catalog holds no signature for. */
  sign?: (sha256: Uint8Array) => Promise<Uint8Array>;
}

/** Prepares transfer images. */
export class TransferImages {
  /** Most recently used last. */
  readonly #prepared = new Map<string, Prepared>();

  /** Images from `source`. */
  constructor(readonly source: ImageSource) {}

  /**
   * The image of `meta` cut in chunks of `chunkSize`, its bytes leased until the transfer calls
   * `release()`. Throws what the catalog throws (e.g. `MEMORY_BOUND`).
   */
  async get(meta: ImageMeta, chunkSize: number): Promise<TransferImage> {
    const lease = this.source.leaseImage
      ? await this.source.leaseImage(meta.sha256)
      : { bytes: await this.source.readImage(meta.sha256), release: () => {} };
    try {
      const sha256 = fromHex(meta.sha256);
      const prepared = this.#preparedFor(meta, chunkSize, lease.bytes.length, sha256);
      const signature = await prepared.signature;
      const bytes = lease.bytes;
      return {
        ...meta,
        shaHex: meta.sha256,
        sha256,
        bytes,
        crc: (index) => prepared.crcs.of(index, bytes),
        signature,
        release: lease.release,
      };
    } catch (err) {
      lease.release();
      throw err;
    }
  }

  /**
   * The image of `meta` for a transfer that sends no CHUNK (an HTTP download, protocol §7.3):
   * its identity and signature, no bytes leased (the HTTP server leases them while it serves).
   */
  async describe(meta: ImageMeta): Promise<TransferImage> {
    const sha256 = fromHex(meta.sha256);
    return {
      ...meta,
      shaHex: meta.sha256,
      sha256,
      bytes: new Uint8Array(0),
      crc: () => 0,
      signature: await this.#signature(meta, sha256),
    };
  }

  #preparedFor(meta: ImageMeta, chunkSize: number, size: number, sha256: Uint8Array): Prepared {
    const key = `${meta.sha256}/${chunkSize}`;
    let p = this.#prepared.get(key);
    if (p) this.#prepared.delete(key);
    else {
      p = { crcs: new ChunkCrcs(size, chunkSize), signature: this.#signature(meta, sha256) };
      p.signature.catch(() => this.#prepared.delete(key));
    }
    this.#prepared.set(key, p);
    for (const old of this.#prepared.keys()) {
      if (this.#prepared.size <= PREPARED_IMAGES) break;
      this.#prepared.delete(old);
    }
    return p;
  }

  async #signature(meta: ImageMeta, sha256: Uint8Array): Promise<Uint8Array> {
    if (meta.signature) return fromHex(meta.signature);
    return this.source.sign ? await this.source.sign(sha256) : new Uint8Array(0);
  }
}

/**
 * CRC-32 of each chunk of an image, computed the first time it is asked for and then kept. It
 * keeps no bytes: the caller passes the image's bytes.
 */
export class ChunkCrcs {
  readonly #values: Uint32Array;
  readonly #known: Uint8Array;
  #computed = 0;

  /** CRCs of an image of `size` bytes cut in chunks of `chunkSize`; none is computed yet. */
  constructor(size: number, readonly chunkSize: number) {
    const count = Math.ceil(size / chunkSize);
    this.#values = new Uint32Array(count);
    this.#known = new Uint8Array(count);
  }

  /** Chunks whose CRC has been computed so far. */
  get computed(): number {
    return this.#computed;
  }

  /** CRC-32 of chunk `index` of `bytes`. */
  of(index: number, bytes: Uint8Array): number {
    if (!this.#known[index]) {
      const start = index * this.chunkSize;
      this.#values[index] = crc32(bytes.subarray(start, start + this.chunkSize));
      this.#known[index] = 1;
      this.#computed++;
    }
    return this.#values[index];
  }
}
