/**
 * Image preparation: turns catalog metadata into the {@link TransferImage} transfers send (the
 * bytes, a CRC-32 per chunk and the manifest signature), once per (SHA-256, chunk size) and
 * shared by every transfer of that pair.
 *
 * The signature of an image signed offline (`image add --signature`) is served as stored, so the
 * private key never has to be on the sender; only an image without one is signed here, when the
 * sender has a key (docs/protocol.md §4.2).
 * @module
 */

import { crc32, fromHex } from "../protocol/mod.ts";
import type { ImageMeta } from "../catalog/mod.ts";
import type { TransferImage } from "./transfer.ts";

/** Prepared images kept at most; older ones are prepared again when asked (bytes stay cached). */
export const PREPARED_IMAGES = 64;

/** Prepares and shares transfer images. */
export class TransferImages {
  /** Most recently used last. */
  readonly #prepared = new Map<string, Promise<TransferImage>>();

  /** Images read with `readImage`; `sign` signs images the catalog holds no signature for. */
  constructor(
    readonly source: {
      readImage(sha256: string): Promise<Uint8Array>;
      sign?: (sha256: Uint8Array) => Promise<Uint8Array>;
    },
  ) {}

  /** The image of `meta` cut in chunks of `chunkSize`. */
  get(meta: ImageMeta, chunkSize: number): Promise<TransferImage> {
    const key = `${meta.sha256}/${chunkSize}`;
    let p = this.#prepared.get(key);
    if (p) this.#prepared.delete(key);
    else {
      p = this.#prepare(meta, chunkSize);
      p.catch(() => this.#prepared.delete(key));
    }
    this.#prepared.set(key, p);
    for (const old of this.#prepared.keys()) {
      if (this.#prepared.size <= PREPARED_IMAGES) break;
      this.#prepared.delete(old);
    }
    return p;
  }

  async #prepare(meta: ImageMeta, chunkSize: number): Promise<TransferImage> {
    const bytes = await this.source.readImage(meta.sha256);
    const count = Math.ceil(bytes.length / chunkSize);
    const crcs = new Uint32Array(count);
    for (let i = 0; i < count; i++) {
      crcs[i] = crc32(bytes.subarray(i * chunkSize, (i + 1) * chunkSize));
    }
    const sha256 = fromHex(meta.sha256);
    return {
      ...meta,
      shaHex: meta.sha256,
      sha256,
      bytes,
      crcs,
      signature: await this.#signature(meta, sha256),
    };
  }

  async #signature(meta: ImageMeta, sha256: Uint8Array): Promise<Uint8Array> {
    if (meta.signature) return fromHex(meta.signature);
    return this.source.sign ? await this.source.sign(sha256) : new Uint8Array(0);
  }
}
