/**
 * The sender's outgoing backlog: bytes handed to the transport and not yet written to its socket,
 * every byte of a publication counted (topic, Response Topic, Correlation Data and payload).
 * Transfers ask before each CHUNK; above the cap they are held, and resumed oldest first once the
 * backlog has drained to half of it.
 * @module
 */

import type { PublishOptions, Transport } from "../transport/types.ts";

/**
 * Default cap of the sender's outgoing backlog. Without one, 1000 devices asking for window 64
 * put 1000 × 64 × 4 KiB into the socket's buffer at once (QoS 0 has no broker flow control):
 * round trips grew past the resend timeout, resends fed the backlog, the sender reached
 * 1.7 GiB and 28 % of transfers failed (bench, docs/performance.md). 1 MiB drains in ~10 ms
 * at the broker's rate, far below the 1000 ms minimum resend timeout; 4 MiB moved no more data
 * but cost 60-80 MiB more peak RSS at 1000 devices and O(n²) work on MQTT.js's one-per-publish
 * `drain` listeners.
 */
export const MAX_BACKLOG_BYTES = 1024 * 1024;

const EMPTY = new Uint8Array(0);

/** Counts published bytes until written and holds senders above the cap. */
export class Backlog<T> {
  #bytes = 0;
  /** Every byte ever published through here: one addition per message, read by scrapes. */
  #published = 0;
  /** Held back by the cap, resumed in order as it drains. */
  readonly #held = new Set<T>();

  /**
   * A backlog publishing through `transport`, holding above `maxBytes`; `resume` is called for
   * each held sender that may publish again, `warn` for a failed publication.
   */
  constructor(
    readonly transport: Transport,
    readonly options: { maxBytes: number; warn: (line: string) => void; resume: (held: T) => void },
  ) {}

  /** Bytes published and not yet written. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Bytes published since start (topic, properties and payload of every message). */
  get publishedTotal(): number {
    return this.#published;
  }

  /** Publishes, counting the bytes until the transport has written them. */
  publish(topic: string, payload: Uint8Array, options: PublishOptions): void {
    const n = publishedBytes(topic, payload, options);
    this.#bytes += n;
    this.#published += n;
    this.transport.publish(topic, payload, options).then(
      () => this.#written(n),
      (err) => this.#failed(topic, n, err),
    );
  }

  /**
   * A publisher of messages to `topic` made of a head and a body (a CHUNK's header and its bytes
   * in the image), counted like {@link publish}. At QoS 0 on a transport with a fast path
   * ({@link Transport.prepare}) the topic and properties are encoded once and the body is never
   * copied; otherwise each message is joined and published. `head` may be reused once the call
   * returns.
   */
  prepare(topic: string, options: PublishOptions): (head: Uint8Array, body: Uint8Array) => void {
    const prepared = options.qos === 0 ? this.transport.prepare?.(topic, options) : undefined;
    if (!prepared) {
      return (head, body) => {
        const payload = new Uint8Array(head.length + body.length);
        payload.set(head);
        payload.set(body, head.length);
        this.publish(topic, payload, options);
      };
    }
    const fixed = publishedBytes(topic, EMPTY, options);
    return (head, body) => {
      const n = fixed + head.length + body.length;
      this.#bytes += n;
      this.#published += n;
      prepared.publish(head, body, (err) => err ? this.#failed(topic, n, err) : this.#written(n));
    };
  }

  #failed(topic: string, n: number, err: unknown): void {
    this.options.warn(`publish to "${topic}" failed: ${err}`);
    this.#written(n);
  }

  #written(n: number): void {
    this.#bytes -= n;
    if (this.#held.size > 0 && this.#bytes < this.options.maxBytes / 2) this.#resumeHeld();
  }

  /** True when `sender` may publish now; otherwise it is held until the backlog drains. */
  mayPublish(sender: T): boolean {
    if (this.#bytes < this.options.maxBytes) return true;
    this.#held.add(sender);
    return false;
  }

  /** Forgets a sender that will publish no more. */
  forget(sender: T): void {
    this.#held.delete(sender);
  }

  /** Sends that are held back now. */
  get heldCount(): number {
    return this.#held.size;
  }

  #resumeHeld(): void {
    for (const t of this.#held) {
      if (this.#bytes >= this.options.maxBytes) break;
      this.#held.delete(t);
      this.options.resume(t);
    }
  }
}

/** Bytes a publication puts on the wire beyond fixed headers: topic, properties and payload. */
export function publishedBytes(
  topic: string,
  payload: Uint8Array,
  options: PublishOptions,
): number {
  return utf8Length(topic) + payload.length +
    (options.responseTopic ? utf8Length(options.responseTopic) : 0) +
    (options.correlationData?.length ?? 0);
}

/**
 * UTF-8 byte length of `text` without encoding it: this runs for every CHUNK, and encoding the
 * topic and Response Topic allocated two buffers each time.
 */
export function utf8Length(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c < 0xdc00 && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d < 0xe000) {
        n += 4; // a surrogate pair: one code point of 4 bytes
        i++;
      } else n += 3; // a lone surrogate: encoded as U+FFFD
    } else n += 3;
  }
  return n;
}
