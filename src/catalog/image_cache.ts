/**
 * The in-memory image bytes of a catalog, bounded in bytes: the one bound for every image held in
 * memory, whether cached or in use. Images in use (leased by {@link ImageCache.pin}, e.g. by the
 * sender's open transfers) are never evicted and count toward the limit; unused ones are evicted
 * least recently used first. One sender walking 12 versions of 8 MiB used to hold 96 MiB beside a
 * full 64 MiB cache: leases make those bytes part of the one bound.
 * @module
 */

interface Entry {
  bytes: Uint8Array;
  /** Leases not yet released. */
  users: number;
  /**
   * Deleted while in use: absent to lookups, held (and counted) only until its last lease ends.
   * Storing the image again (put or pin of bytes read from storage) makes it present again.
   */
  removed?: boolean;
}

/** LRU cache of image bytes by SHA-256 with leases, holding at most `limitBytes`. */
export class ImageCache {
  /** Least recently used first (Map keeps insertion order). */
  readonly #entries = new Map<string, Entry>();
  #used = 0;
  #inUse = 0;
  #hits = 0;
  #misses = 0;

  /** A cache that never holds more than `limitBytes` (but see {@link ImageCache.fits}). */
  constructor(readonly limitBytes: number) {}

  /** Bytes held now, cached and in use. */
  get usedBytes(): number {
    return this.#used;
  }

  /** Bytes of images in use (leased). */
  get inUseBytes(): number {
    return this.#inUse;
  }

  /** Lookups by {@link ImageCache.get} that found the image in memory. */
  get hits(): number {
    return this.#hits;
  }

  /** Lookups by {@link ImageCache.get} that did not (the image had to be read from storage). */
  get misses(): number {
    return this.#misses;
  }

  /**
   * The cached bytes of `sha`, marked as most recently used; undefined when absent. Counts a hit
   * or a miss: call it once per read a user asked for, and {@link ImageCache.peek} otherwise.
   */
  get(sha: string): Uint8Array | undefined {
    const bytes = this.peek(sha);
    if (bytes) this.#hits++;
    else this.#misses++;
    return bytes;
  }

  /** Like {@link ImageCache.get} without counting a hit or a miss. */
  peek(sha: string): Uint8Array | undefined {
    const entry = this.#entries.get(sha);
    if (entry?.removed) return undefined;
    if (entry) {
      this.#entries.delete(sha);
      this.#entries.set(sha, entry);
    }
    return entry?.bytes;
  }

  /**
   * Whether an image of `size` bytes not held yet could be leased now: the images in use plus it
   * stay within the limit (unused ones would be evicted). One image alone is always allowed, so
   * a limit below an image's size still serves one image at a time.
   */
  fits(size: number): boolean {
    return this.#inUse === 0 || this.#inUse + size <= this.limitBytes;
  }

  /**
   * Keeps `bytes` (replacing an unused entry of `sha`), evicting the least recently used unused
   * images; bytes that cannot fit beside the images in use are not kept.
   */
  put(sha: string, bytes: Uint8Array): void {
    const old = this.#entries.get(sha);
    if (old && old.users > 0) {
      old.removed = false;
      return void this.peek(sha);
    }
    if (old) this.#evict(sha, old);
    if (!this.#makeRoom(bytes.length)) return;
    this.#entries.set(sha, { bytes, users: 0 });
    this.#used += bytes.length;
  }

  /**
   * Leases `bytes` of `sha` (keeping them if not held yet): they stay in memory, counted, until
   * {@link ImageCache.release}. Returns false, leasing nothing, when they do not fit
   * ({@link ImageCache.fits}).
   */
  pin(sha: string, bytes: Uint8Array): boolean {
    let entry = this.#entries.get(sha);
    if (!entry) {
      if (!this.fits(bytes.length)) return false;
      // Alone and over the limit (fits() allows one image): nothing else stays beside it.
      if (!this.#makeRoom(bytes.length)) this.#evictUnused();
      entry = { bytes, users: 0 };
      this.#entries.set(sha, entry);
      this.#used += bytes.length;
    }
    if (entry.users++ === 0) this.#inUse += entry.bytes.length;
    entry.removed = false;
    this.peek(sha);
    return true;
  }

  /**
   * Ends one lease of `sha`; an image deleted while in use, or over the limit, and no longer in
   * use is dropped.
   */
  release(sha: string): void {
    const entry = this.#entries.get(sha);
    if (!entry || entry.users === 0) return;
    if (--entry.users === 0) {
      this.#inUse -= entry.bytes.length;
      if (entry.removed || this.#used > this.limitBytes) this.#evict(sha, entry);
    }
  }

  /**
   * Drops `sha` now if not in use; an image in use becomes absent to lookups at once and is
   * dropped when its last lease is released.
   */
  delete(sha: string): void {
    const entry = this.#entries.get(sha);
    if (!entry) return;
    if (entry.users === 0) this.#evict(sha, entry);
    else entry.removed = true;
  }

  /** Drops everything. */
  clear(): void {
    this.#entries.clear();
    this.#used = 0;
    this.#inUse = 0;
  }

  /** Evicts unused images, oldest first, until `size` more bytes fit; false when they cannot. */
  #makeRoom(size: number): boolean {
    if (this.#inUse + size > this.limitBytes) return false;
    for (const [key, entry] of this.#entries) {
      if (this.#used + size <= this.limitBytes) break;
      if (entry.users === 0) this.#evict(key, entry);
    }
    return this.#used + size <= this.limitBytes;
  }

  #evictUnused(): void {
    for (const [key, entry] of this.#entries) if (entry.users === 0) this.#evict(key, entry);
  }

  #evict(sha: string, entry: Entry): void {
    this.#entries.delete(sha);
    this.#used -= entry.bytes.length;
  }
}
