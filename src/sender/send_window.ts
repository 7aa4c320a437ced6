/**
 * The go-back-N window of one transfer (docs/protocol.md §7, §8): which chunk goes next, what a
 * cumulative ACK or a NACK does to it, and how many chunks may be in flight (the congestion
 * window, adapted to losses when asked). Pure bookkeeping over chunk indexes and send times: the
 * transfer owns the states, the timers and the messages.
 * @module
 */

/** What a {@link SendWindow} is set up with. */
export interface SendWindowInit {
  chunkCount: number;
  /** Index of the first chunk to send (the start offset's chunk). */
  firstIndex: number;
  /** Granted window: the most chunks in flight, ever. */
  window: number;
  /** Adapt the chunks in flight to losses (slow start); else always `window`. */
  adaptive: boolean;
}

/** What a cumulative ACK did. */
export interface AckEffect {
  /** It acknowledged chunks not acknowledged before. */
  advanced: boolean;
  /**
   * Send time of the newest chunk it newly acknowledged, for a round-trip sample; undefined when
   * it did not advance or that chunk was ever resent (Karn's rule).
   */
  sentAt?: number;
}

/** The window of one transfer. */
export class SendWindow {
  readonly #init: SendWindowInit;
  /** Every chunk below this index is acknowledged. */
  #acked: number;
  /** Next chunk index to send. */
  #next: number;
  /** One past the highest chunk index ever sent. */
  #highestSent: number;
  #cwnd: number;
  #resends = 0;
  /** Of `#resends`, those a NACK went back for. */
  #resendsAfterNack = 0;
  #chunksSent = 0;
  /** The NACK'd index already gone back to since the last progress (one go-back per index). */
  #nackedAt = -1;
  /** Send time of each in-flight chunk, by index modulo the window. */
  readonly #sentAt: Float64Array;
  /** 1 for every chunk index sent more than once. */
  readonly #resent: Uint8Array;

  /** A window with nothing sent yet. */
  constructor(init: SendWindowInit) {
    this.#init = init;
    this.#acked = init.firstIndex;
    this.#next = init.firstIndex;
    this.#highestSent = init.firstIndex;
    this.#cwnd = init.adaptive ? this.#minCwnd() : init.window;
    this.#sentAt = new Float64Array(init.window);
    this.#resent = new Uint8Array(init.chunkCount);
  }

  /** Every chunk below this index is acknowledged. */
  get acked(): number {
    return this.#acked;
  }

  /** Chunks allowed in flight now (≤ the granted window). */
  get cwnd(): number {
    return this.#cwnd;
  }

  /** Chunks sent and not yet acknowledged. */
  get inFlight(): number {
    return this.#next - this.#acked;
  }

  /** Chunks sent again so far. */
  get resends(): number {
    return this.#resends;
  }

  /** Of {@link SendWindow.resends}, the chunks a NACK went back for (the rest: timeouts). */
  get resendsAfterNack(): number {
    return this.#resendsAfterNack;
  }

  /** Chunks sent so far, resends included. */
  get chunksSent(): number {
    return this.#chunksSent;
  }

  /** Whether every chunk is acknowledged. */
  get complete(): boolean {
    return this.#acked >= this.#init.chunkCount;
  }

  /** Next chunk index to send. */
  get next(): number {
    return this.#next;
  }

  /**
   * Whether the window has room for another chunk now, below `limit` (a shared stream's
   * position, protocol §11.2: chunks from there on are the stream's to send).
   */
  hasRoom(limit = this.#init.chunkCount): boolean {
    return this.#next < Math.min(this.#init.chunkCount, this.#acked + this.#cwnd, limit);
  }

  /**
   * Takes chunk `index`, which a shared stream published at `now`, as sent (protocol §11.2): only
   * when it is the next chunk to send and within the granted window. The congestion window does
   * not apply: the stream paces itself by its quorum's ACKs. It is not counted in
   * {@link chunksSent}, which counts what this transfer published itself.
   */
  takeShared(index: number, now: number): boolean {
    if (
      index !== this.#next || index >= this.#init.chunkCount ||
      index >= this.#acked + this.#init.window
    ) return false;
    this.take(now);
    this.#chunksSent--;
    return true;
  }

  /** Takes the next chunk index to send at `now`; call only when {@link hasRoom}. */
  take(now: number): number {
    const index = this.#next++;
    this.#sentAt[index % this.#init.window] = now;
    if (index >= this.#highestSent) this.#highestSent = index + 1;
    else this.#resent[index] = 1;
    this.#chunksSent++;
    return index;
  }

  /**
   * Applies a cumulative ACK `nextIndex`. Returns null for one beyond anything sent (ignored);
   * an ACK going backwards or repeating changes nothing.
   */
  ack(nextIndex: number): AckEffect | null {
    const n = nextIndex;
    if (n > this.#highestSent) return null;
    if (n <= this.#acked) return { advanced: false };
    const newly = n - this.#acked;
    // The slot of chunk n - 1 still holds its send time: chunk n - 1 + window cannot have been
    // sent while n - 1 was unacknowledged.
    const sentAt = this.#resent[n - 1] ? undefined : this.#sentAt[(n - 1) % this.#init.window];
    this.#acked = n;
    this.#next = Math.max(this.#next, n); // a late ACK after a go-back still counts
    this.#nackedAt = -1;
    if (this.#init.adaptive) this.#cwnd = Math.min(this.#init.window, this.#cwnd + newly);
    return { advanced: true, sentAt };
  }

  /**
   * A NACK of chunk `nextIndex`: goes back to it once per index until progress (later NACKs for
   * it are the rest of the old window); a `gap` loss halves an adaptive window. Returns whether
   * it went back.
   */
  nack(nextIndex: number, { gap }: { gap: boolean }): boolean {
    const n = nextIndex;
    if (n !== this.#acked || n >= this.#init.chunkCount || this.#nackedAt === n) return false;
    this.#nackedAt = n;
    if (gap) this.#shrink();
    this.#resendsAfterNack += this.#next - this.#acked;
    this.#goBack();
    return true;
  }

  /** A resend timeout: halves an adaptive window and goes back to the oldest unacknowledged chunk. */
  timeout(): void {
    this.#shrink();
    this.#nackedAt = -1;
    this.#goBack();
  }

  #goBack(): void {
    this.#resends += this.#next - this.#acked;
    this.#next = this.#acked;
  }

  #shrink(): void {
    if (this.#init.adaptive) this.#cwnd = Math.max(this.#minCwnd(), this.#cwnd >> 1);
  }

  /**
   * The smallest useful cwnd: a device acknowledges every ceil(window / 2) in-order chunks
   * (protocol §8) and holds a smaller batch for its ack delay, so fewer chunks in flight than
   * that stall every round trip on the device's ack timer (measured: ~10 ms per doubling).
   */
  #minCwnd(): number {
    const { window } = this.#init;
    return Math.min(window, Math.max(4, Math.ceil(window / 2)));
  }
}
