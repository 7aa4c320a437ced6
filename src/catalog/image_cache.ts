/**
 * The in-memory cache of whole images, least recently used evicted first, bounded in bytes.
 * @module
 */

/** LRU cache of image bytes by SHA-256, holding at most `limitBytes`. */
export class ImageCache {
  /** Least recently used first (Map keeps insertion order). */
  readonly #entries = new Map<string, Uint8Array>();
  #used = 0;

  /** A cache that never holds more than `limitBytes`. */
  constructor(readonly limitBytes: number) {}

  /** Bytes held now. */
  get usedBytes(): number {
    return this.#used;
  }

  /** The cached bytes of `sha`, marked as most recently used; undefined when absent. */
  get(sha: string): Uint8Array | undefined {
    const bytes = this.#entries.get(sha);
    if (bytes) {
      this.#entries.delete(sha);
      this.#entries.set(sha, bytes);
    }
    return bytes;
  }

  /** Keeps `bytes`, evicting the least recently used; an image over the limit is not kept. */
  put(sha: string, bytes: Uint8Array): void {
    if (bytes.length > this.limitBytes) return;
    this.delete(sha);
    for (const [key, value] of this.#entries) {
      if (this.#used + bytes.length <= this.limitBytes) break;
      this.#entries.delete(key);
      this.#used -= value.length;
    }
    this.#entries.set(sha, bytes);
    this.#used += bytes.length;
  }

  /** Drops `sha` if cached. */
  delete(sha: string): void {
    const cached = this.#entries.get(sha);
    if (cached) {
      this.#entries.delete(sha);
      this.#used -= cached.length;
    }
  }

  /** Drops everything. */
  clear(): void {
    this.#entries.clear();
    this.#used = 0;
  }
}
