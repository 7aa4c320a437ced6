/**
 * One-to-many delivery (docs/protocol.md §11): the shared image streams of a sender. A stream
 * publishes each chunk of one image once on `{p}/img/{sha16}/{streamId}`, paced by the
 * acknowledged progress of a quorum of its members (§11.2), and tells every member transfer which
 * chunk it sent for it. The member transfers stay ordinary §7 transfers: they send by unicast only
 * the chunks below the stream's position (late joiners, repairs), so a slow or late device is
 * repaired without holding the others back.
 *
 * A stream's states: GATHERING (for `gatherMs` after it opens: devices join, nothing is
 * published), STREAMING (chunks go out as the quorum and the rate allow), ENDED (the last chunk is
 * out, or no member is left). It does no I/O of its own: it publishes through the function it is
 * given, so a test can drive it without a broker.
 * @module
 */

import {
  CHUNK_HEADER_BYTES,
  DEFAULT_SHARED_GATHER_MS,
  DEFAULT_SHARED_QUORUM,
  MAX_SHARED_LAPSES,
  sharedImageTopic,
  type SharedStreamRef,
} from "../protocol/mod.ts";
import type { PublishOptions } from "../transport/types.ts";
import { type TransferImage, writeImageChunk } from "./transfer_images.ts";

/** Settings of one-to-many delivery (sender options `shared`). */
export interface SharedSettings {
  /** Serve eligible devices through shared streams (§11.1); default false. */
  enabled: boolean;
  /** A new stream waits this long for more devices before its first CHUNK; default 1000 ms. */
  gatherMs: number;
  /** Fraction of a stream's members whose acknowledged progress paces it (§11.2); default 0.9. */
  quorum: number;
  /** Most payload bytes a stream publishes per second; 0 = paced by the quorum alone (default). */
  bytesPerSecond: number;
  /** Lapses before a member leaves its stream (§11.2); default MAX_SHARED_LAPSES. */
  maxLapses: number;
}

/** The protocol's defaults (§6, §11); streams are off unless a sender turns them on. */
export const DEFAULT_SHARED_SETTINGS: SharedSettings = {
  enabled: false,
  gatherMs: DEFAULT_SHARED_GATHER_MS,
  quorum: DEFAULT_SHARED_QUORUM,
  bytesPerSecond: 0,
  maxLapses: MAX_SHARED_LAPSES,
};

/** What a stream needs of a member transfer (the sender's {@link Transfer}). */
export interface StreamMember {
  /** Every chunk below this index is acknowledged by the device. */
  readonly acked: number;
  /**
   * The stream published chunk `index` at `now`: a member whose next chunk is `index` takes it
   * as sent (§11.2); one that is behind may now send more by unicast.
   */
  streamChunk(index: number, now: number): void;
  /** The stream ended: the member sends whatever it still needs by unicast. */
  streamEnded(now: number): void;
}

/** A member's hold on its stream, given to its transfer. */
export interface StreamLink {
  /** The MANIFEST fields announcing the stream (§4.2). */
  readonly ref: SharedStreamRef;
  /** The first chunk index the transfer must not send itself (§11.2). */
  limit(): number;
  /**
   * The device acknowledged more: the stream may be able to go on. The stream reads the member's
   * `acked` only at join and here, so every rise of it must be reported through this.
   */
  progressed(now: number): void;
  /** A resend timeout with stream-sent chunks in flight; true when the member left the stream. */
  lapse(): boolean;
  /** The transfer closed (or left): the stream forgets it. */
  leave(): void;
}

/** Counters of the shared streams, part of the sender's stats. */
export interface SharedStreamStats {
  /** Streams opened. */
  streams: number;
  /** CHUNKs published on shared image topics. */
  sharedChunks: number;
  /** Payload bytes of those CHUNKs. */
  sharedBytes: number;
}

/** What the streams publish through and are timed by. */
export interface SharedStreamsInit {
  prefix: string;
  settings: SharedSettings;
  dataQos: 0 | 1;
  now: () => number;
  /** Publishes a message; must not throw. */
  send: (topic: string, payload: Uint8Array, options: PublishOptions) => void;
  /** False while the sender's outgoing backlog is full: the stream waits for `dispatch(resume)`. */
  mayPublish: (stream: SharedStream) => boolean;
  stats: SharedStreamStats;
  log: (line: string) => void;
}

/** The three states of a stream (module doc). */
export type StreamState = "GATHERING" | "STREAMING" | "ENDED";

/** One shared stream of one image at one chunk size; see the module doc. */
export class SharedStream {
  readonly ref: SharedStreamRef;
  readonly chunkCount: number;
  #state: StreamState = "GATHERING";
  /** Next chunk to publish. */
  #next = 0;
  /** Each member's lapses and the `acked` it last reported (at join or through `progressed`). */
  readonly #members = new Map<StreamMember, { lapses: number; acked: number }>();
  /** Members by last reported `acked`: `#atAcked[a]` members reported `a` (0..chunkCount). */
  readonly #atAcked: Uint32Array;
  /** Members whose last reported `acked` is above the floor `#next − window` (§11.2). */
  #aboveFloor = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** Earliest time the rate cap lets the next chunk go (ms, the sender's clock). */
  #notBefore = 0;

  /** A stream in GATHERING; its timer ends the gathering after `gatherMs`. */
  constructor(
    readonly id: number,
    readonly image: TransferImage,
    readonly chunkSize: number,
    /** The stream's window W (§11.2): the window granted to the transfer that opened it. */
    readonly window: number,
    private readonly init: SharedStreamsInit,
    private readonly onEnd: (stream: SharedStream) => void,
  ) {
    this.ref = { streamId: id, topic: sharedImageTopic(init.prefix, image.shaHex, id) };
    this.chunkCount = Math.ceil(image.bytes.length / chunkSize);
    this.#atAcked = new Uint32Array(this.chunkCount + 1);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#state !== "GATHERING") return;
      this.#state = "STREAMING";
      this.pump(this.init.now());
    }, init.settings.gatherMs);
  }

  /** Where the stream is (§11). */
  get state(): StreamState {
    return this.#state;
  }

  /** The next chunk the stream will publish; `chunkCount` once it ended. */
  get position(): number {
    return this.#state === "ENDED" ? this.chunkCount : this.#next;
  }

  /** Members now. */
  get members(): number {
    return this.#members.size;
  }

  /** Adds a member transfer and returns its link. */
  join(member: StreamMember): StreamLink {
    const record = { lapses: 0, acked: this.#clampAcked(member.acked) };
    this.#members.set(member, record);
    this.#atAcked[record.acked]++;
    if (record.acked > this.#next - this.window) this.#aboveFloor++;
    const leave = () => {
      if (!this.#members.delete(member)) return;
      this.#atAcked[record.acked]--;
      if (record.acked > this.#next - this.window) this.#aboveFloor--;
      if (this.#members.size === 0) this.#end("no member left");
      else this.pump(this.init.now()); // the quorum may have been waiting for it
    };
    return {
      ref: this.ref,
      limit: () => (this.#members.has(member) ? this.position : this.chunkCount),
      progressed: (now) => {
        if (this.#members.has(member)) this.#moved(record, this.#clampAcked(member.acked));
        this.pump(now);
      },
      lapse: () => {
        const m = this.#members.get(member);
        if (!m) return true;
        if (++m.lapses < this.init.settings.maxLapses) return false;
        this.init.log(
          `stream ${this.id}: a member left after ${m.lapses} lapses; it finishes by unicast`,
        );
        leave();
        return true;
      },
      leave,
    };
  }

  /** The backlog drained (the sender's `resume` event): publish what is allowed. */
  dispatch(_event: { type: "resume" }, now: number): void {
    this.pump(now);
  }

  /** Publishes every chunk the quorum, the rate cap and the backlog allow now. */
  pump(now: number): void {
    if (this.#state !== "STREAMING" || this.#timer !== undefined) return;
    while (this.#next < this.chunkCount && this.#quorumAllows()) {
      if (now < this.#notBefore) {
        this.#timer = setTimeout(() => {
          this.#timer = undefined;
          this.pump(this.init.now());
        }, Math.ceil(this.#notBefore - now));
        return;
      }
      if (!this.init.mayPublish(this)) return;
      // The position moves first: a member that is behind may send up to this chunk itself.
      const index = this.#next++;
      // The floor `#next − window` rose by one: members that reported exactly it drop out.
      const floor = this.#next - this.window;
      if (floor >= 0) this.#aboveFloor -= this.#atAcked[floor];
      this.#publish(index, now);
    }
    if (this.#next >= this.chunkCount) this.#end("last chunk published");
  }

  /** Ends the stream now (sender shutdown). */
  close(): void {
    this.#end("sender stopping");
  }

  /**
   * §11.2: chunk `#next` may go once `ceil(quorum × n)` members acknowledged every chunk below
   * `#next − W + 1`, that is reported an `acked` above `#next − W`. The count of those members is
   * kept up to date as members join, progress and leave and as `#next` moves, so this is O(1)
   * per ACK and per chunk.
   */
  #quorumAllows(): boolean {
    const need = Math.max(1, Math.ceil(this.init.settings.quorum * this.#members.size));
    return this.#aboveFloor >= need;
  }

  /** A member's `acked` as a count index: acks never go past the last chunk. */
  #clampAcked(acked: number): number {
    return Math.max(0, Math.min(this.chunkCount, acked));
  }

  /** A member now reports `acked` (never less than before: acknowledgements are cumulative). */
  #moved(record: { acked: number }, acked: number): void {
    if (acked <= record.acked) return;
    const floor = this.#next - this.window;
    this.#atAcked[record.acked]--;
    this.#atAcked[acked]++;
    if (record.acked <= floor && acked > floor) this.#aboveFloor++;
    record.acked = acked;
  }

  #publish(index: number, now: number): void {
    const message = writeImageChunk(this.image, this.chunkSize, this.id, index, null);
    const payloadBytes = message.length - CHUNK_HEADER_BYTES;
    // §11.2: no Response Topic, no Correlation Data: the chunk is every member's.
    this.init.send(this.ref.topic, message, { qos: this.init.dataQos });
    this.init.stats.sharedChunks++;
    this.init.stats.sharedBytes += payloadBytes;
    const rate = this.init.settings.bytesPerSecond;
    if (rate > 0) this.#notBefore = Math.max(this.#notBefore, now) + (payloadBytes * 1000) / rate;
    for (const member of [...this.#members.keys()]) member.streamChunk(index, now);
  }

  #end(why: string): void {
    if (this.#state === "ENDED") return;
    this.#state = "ENDED";
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.init.log(
      `stream ${this.id} ended after ${this.#next} of ${this.chunkCount} chunks: ${why}`,
    );
    this.onEnd(this);
    const now = this.init.now();
    const members = [...this.#members.keys()];
    this.#members.clear();
    this.#atAcked.fill(0);
    this.#aboveFloor = 0;
    for (const member of members) member.streamEnded(now);
  }
}

/** The open streams of a sender, one per image and chunk size (§11.1). */
export class SharedStreams {
  readonly #open = new Map<string, SharedStream>();
  /**
   * Stream ids count up from a random start: two sender instances sharing a broker then rarely
   * pick the same topic for the same image (§11.1).
   */
  #lastId = crypto.getRandomValues(new Uint32Array(1))[0];

  /** Streams publishing through `init`. */
  constructor(private readonly init: SharedStreamsInit) {}

  /** Open streams now. */
  get size(): number {
    return this.#open.size;
  }

  /**
   * The stream a transfer of `image` at `chunkSize` starting at chunk `startIndex` joins: the
   * open one when its position is not below `startIndex`, else a new one when `startIndex` is 0;
   * null when the transfer must go unicast (§11.3).
   */
  streamFor(
    image: TransferImage,
    { chunkSize, window, startIndex }: { chunkSize: number; window: number; startIndex: number },
  ): SharedStream | null {
    const key = `${image.shaHex}/${chunkSize}`;
    const open = this.#open.get(key);
    if (open && open.state !== "ENDED") return startIndex <= open.position ? open : null;
    if (startIndex !== 0) return null;
    const id = this.#lastId = (this.#lastId % 0xFFFFFFFF) + 1;
    const stream = new SharedStream(id, image, chunkSize, window, this.init, (s) => {
      if (this.#open.get(key) === s) this.#open.delete(key);
    });
    this.#open.set(key, stream);
    this.init.stats.streams++;
    this.init.log(
      `stream ${id} of ${image.product}@${image.version} opens on "${stream.ref.topic}"` +
        ` (chunk ${chunkSize}, window ${window})`,
    );
    return stream;
  }

  /** Ends every stream (sender shutdown). */
  closeAll(): void {
    for (const s of [...this.#open.values()]) s.close();
  }
}
