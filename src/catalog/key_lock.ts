/**
 * A lock per key within one process: work on one key runs one after another, work on different
 * keys runs at the same time. The catalog serialises adds and removes of one SHA-256 with it.
 * @module
 */

/** Runs functions one after another per key. */
export class KeyLock {
  readonly #tails = new Map<string, Promise<void>>();

  /** Runs `fn` after every earlier `run` of the same `key` has settled. */
  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = previous.then(() => new Promise<void>((resolve) => (release = resolve)));
    this.#tails.set(key, mine);
    await previous;
    try {
      return await fn();
    } finally {
      release();
      if (this.#tails.get(key) === mine) this.#tails.delete(key);
    }
  }
}
