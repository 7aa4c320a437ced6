/**
 * One simulated device: the receiver state machine of docs/protocol.md §8 over a {@link Link}
 * (one MQTT connection per device, client id = device id). It requests an image, takes the
 * MANIFEST, writes CHUNKs strictly in order into a {@link FlashSink}, acknowledges them
 * (coalesced as §8.2 allows), NACKs what it cannot use, re-requests after an idle timeout or a
 * disconnect, verifies the SHA-256 and reports a STATUS.
 *
 * This module owns the device's plumbing: the event queue, the filter of §8.1, the one deadline
 * of each state, the connection and the result. What each event does is in the transition table
 * (transitions.ts) and its handlers (handlers/). The receiver holds no fault code: faults come
 * from wrapping its link (faulty_link.ts) and its sink (faulty_sink.ts, flash_timing.ts). The
 * behaviour vectors (tests/vectors/receiver_*.json) pin what it does, as they pin the firmware's.
 * @module
 */

import {
  ACK_TIMEOUT_MS,
  type Chunk,
  codeName,
  decodeChunk,
  decodeError,
  decodeManifest,
  decodeOffer,
  DEFAULT_PREFIX,
  DEVICE_IDLE_TIMEOUT_MS,
  deviceTopics,
  encodeAck,
  encodeStatus,
  ImageKindCode,
  MessageType,
  NackReason,
  type Offer,
  peekTransferId,
  peekType,
  type ResumePoint,
  StatusCode,
  toHex,
} from "../protocol/mod.ts";
import type { InboundMessage } from "../transport/types.ts";
import { MiB, TransferClock, transferRate } from "../format/mod.ts";
import { realClock, type SimClock } from "./clock.ts";
import { FaultySink } from "./faulty_sink.ts";
import { flashAtRate, TimedSink } from "./flash_timing.ts";
import { type Link, type LinkFaultCounts, withLinkFaults } from "./faulty_link.ts";
import type { Device, Exchange } from "./handlers/_device.ts";
import {
  ACK_DELAY_MS,
  MAX_UNANSWERED_REQUESTS,
  SLOT_BYTES,
  STATUS_PUBLISH_TIMEOUT_MS,
} from "./limits.ts";
import type {
  Came,
  ReceiverEvent,
  ReceiverFaults,
  ReceiverOptions,
  ReceiverProgress,
  ReceiverResult,
  ReceiverState,
  ReceiverStats,
  ResolvedReceiverOptions,
} from "./receiver_types.ts";
import { FileSink, type FlashSink, MemorySink } from "./sink.ts";
import { transitionFor } from "./transitions.ts";

export type * from "./receiver_types.ts";
export type { Link } from "./faulty_link.ts";
export { TRANSITIONS } from "./transitions.ts";

const TERMINAL: ReadonlySet<ReceiverState> = new Set(["VERIFIED", "FAILED"]);

/** One simulated device; see the module doc. Call {@link Receiver.run} once. */
export class Receiver implements Device {
  /** The §8 state. */
  state: ReceiverState = "IDLE";
  /** Counters of this run. */
  readonly stats: ReceiverStats = {
    bytesReceived: 0,
    bytesWritten: 0,
    chunksReceived: 0,
    chunks: 0,
    duplicates: 0,
    crcErrors: 0,
    gaps: 0,
    badChunks: 0,
    flashErrors: 0,
    dropped: 0,
    acks: 0,
    nacks: 0,
    requests: 0,
    reconnects: 0,
    ignored: 0,
    offersTaken: 0,
    offersIgnored: 0,
    resumedFrom: 0,
    sharedReceived: 0,
    sharedWritten: 0,
    sharedRefused: 0,
  };
  /** @internal The settings with their defaults (handlers read them). */
  readonly o: ResolvedReceiverOptions;
  /** @internal The device's topics. */
  readonly topics: ReturnType<typeof deviceTopics>;
  /** @internal The flash, wrapped by its timing and faults. */
  readonly sink: FlashSink;
  /** @internal The exchange in progress (handlers change it). */
  readonly x: Exchange;

  private readonly clock: SimClock;
  private readonly connect: () => Promise<Link>;
  private readonly linkFaults: LinkFaultCounts;
  private current: Link | null = null;
  /** Generation of the connection; messages of a closed one are ignored. */
  private generation = 0;
  private readonly queue: ReceiverEvent[] = [];
  /** True while drain() runs; `drained` resolves when it ends. */
  private draining = false;
  private drained: Promise<void> = Promise.resolve();

  // How the run ended.
  private outcome = "";
  private detail = "";
  private sha256 = "";
  private nothingToDo = false;
  /** stop() was called: the run ends at the next FAILED, also in `listen` mode. */
  private stopping = false;
  /** The run's result has been delivered (finish() ran). */
  private ended = false;

  // Timers: the one deadline of the state (idle, back-off) and the held-back ACK's flush.
  private cancelDeadline: (() => void) | null = null;
  private cancelAckFlush: (() => void) | null = null;
  private startedAt = 0;
  private endedAt = 0;
  /** When the first REQUEST and the first accepted MANIFEST of the run happened (0: not yet). */
  private firstRequestAt = 0;
  private firstManifestAt = 0;
  /** Measures the rate by the one definition: first MANIFEST accepted to the last ACK. */
  private readonly rateClock = new TransferClock();
  /** The HTTP download (§8.8): its generation (older events are ignored) and its cancel. */
  private readonly download = {
    generation: 0,
    abort: null as AbortController | null,
    cutDone: false,
  };
  private finished!: (r: ReceiverResult) => void;
  private readonly done: Promise<ReceiverResult>;

  /** Sets up a device; nothing happens until {@link Receiver.run}. */
  constructor(options: ReceiverOptions) {
    this.o = {
      prefix: DEFAULT_PREFIX,
      idleTimeoutMs: DEVICE_IDLE_TIMEOUT_MS,
      ackDelayMs: ACK_DELAY_MS,
      retryDelayMs: ACK_TIMEOUT_MS,
      maxUnansweredRequests: MAX_UNANSWERED_REQUESTS,
      slotBytes: SLOT_BYTES,
      kinds: [ImageKindCode.ESP32_APP, ImageKindCode.FILE],
      random: Math.random,
      // An option given as undefined (runDevices passes its own optional fields on) keeps the default.
      ...Object.fromEntries(
        Object.entries(options).filter(([, v]) => v !== undefined),
      ) as ReceiverOptions,
    };
    this.clock = options.clock ?? realClock;
    this.topics = deviceTopics(this.o.prefix, this.o.deviceId);
    const faults = options.faults ?? {};
    const wrapped = withLinkFaults(options.connect, faults, (line) => this.log(line));
    this.connect = wrapped.connect;
    this.linkFaults = wrapped.counts;
    this.sink = deviceSink(options, faults, this.clock);
    this.x = {
      correlation: new Uint8Array(0),
      unanswered: 0,
      manifest: null,
      ackTopic: "",
      next: 0,
      unacked: 0,
      ackOwed: false,
      ackEvery: 1,
      nackedAt: -1,
      flashFailuresInARow: 0,
      backoffMs: 0,
      offerDelayMs: 0,
      hash: null,
      resumePoint: options.resume ?? null,
      sharedTopic: "",
      streamId: 0,
      httpOffset: 0,
      httpFailures: 0,
      failedAt: null,
    };
    this.done = new Promise((resolve) => (this.finished = resolve));
  }

  /** Device id. */
  get deviceId(): string {
    return this.o.deviceId;
  }

  /** Connects, requests, receives and verifies; resolves when the run is over (never rejects). */
  async run(): Promise<ReceiverResult> {
    if (this.state !== "IDLE" || this.startedAt > 0) return this.done; // stopped before, or run twice
    this.startedAt = this.clock.now();
    try {
      await this.attach();
      if (this.o.listen) this.armDeadline("IDLE", this.o.firstPollMs);
      else this.post({ type: "start" });
    } catch (err) {
      this.outcome = "CONNECT_FAILED";
      this.detail = `Cannot connect${this.o.broker ? ` to ${this.o.broker}` : ""}: ${
        (err as Error).message
      }`;
      this.state = "FAILED";
      await this.finish();
    }
    return this.done;
  }

  /** "Update wanted": a listening device in IDLE sends its REQUEST now (ignored in other states). */
  checkNow(): void {
    this.post({ type: "start" });
  }

  /** Ends the run as ABORTED (e.g. on Ctrl-C); the result still resolves `run()`. */
  stop(why = "stopped by the operator"): void {
    this.stopping = true;
    this.post({ type: "stop", why });
  }

  /** Resolves once every queued event has been handled (tools and tests that step a device). */
  async settled(): Promise<void> {
    while (this.draining) await this.drained;
  }

  /** A snapshot for progress display. */
  progress(): ReceiverProgress {
    const size = this.x.manifest?.size ?? 0;
    const m = this.x.manifest;
    const offset = !m
      ? 0
      : m.url !== undefined
      ? this.x.httpOffset
      : Math.min(this.x.next * m.chunkSize, size);
    return {
      deviceId: this.o.deviceId,
      state: TERMINAL.has(this.state) ? "DONE" : this.state,
      offset,
      size,
      bytesWritten: this.stats.bytesWritten,
    };
  }

  /** The stored resume point: what the sink holds of which image. */
  get resume(): ResumePoint | null {
    return this.x.resumePoint;
  }

  /** How the run ended so far: a STATUS or ERROR code name, empty while it runs. */
  get result(): string {
    return this.outcome;
  }

  // ---- the event queue ----

  private post(event: ReceiverEvent): void {
    this.queue.push(event);
    if (this.draining) return;
    this.draining = true;
    this.drained = this.drain();
  }

  private async drain(): Promise<void> {
    try {
      await this.drainQueue();
    } finally {
      this.draining = false;
    }
    // An event posted after the loop saw the queue empty, while drainQueue() was returning (a
    // fetch that settles as its handler ends), found draining still true: drain it now.
    if (this.queue.length > 0 && !this.ended) {
      this.draining = true;
      this.drained = this.drain();
    }
  }

  /**
   * The run is over: VERIFIED, or FAILED unless a listening device goes on waiting (§8: FAILED,
   * then IDLE; stop() ends it there too).
   */
  private over(): boolean {
    return this.state === "VERIFIED" ||
      (this.state === "FAILED" && (!this.o.listen || this.stopping));
  }

  private async drainQueue(): Promise<void> {
    while (this.queue.length > 0 && !this.over()) {
      const event = this.queue.shift()!;
      const row = transitionFor(this.state, event.type);
      if (!row || !this.isCurrent(event)) {
        if (event.type === "offer") this.ignoreOffer(event.offer, `in ${this.state}`);
        else if (event.type === "shared_chunk") continue; // §11.4: dropped silently, counted on arrival
        else if (event.type !== "ack_due" && event.type !== "timeout") this.stats.ignored++;
        continue;
      }
      const before = this.state;
      const at = this.clock.now();
      if (before === "FAILED") this.beginAttempt();
      let next: ReceiverState;
      try {
        next = await row.handler(this, event);
        if (!row.next.includes(next)) {
          throw new Error(`${event.type} in ${before} led to ${next}, not ${row.next.join(" / ")}`);
        }
      } catch (err) {
        this.log(`internal error on ${event.type} in ${before}: ${(err as Error).stack ?? err}`);
        next = await this.fail(StatusCode.ABORTED, `Internal error: ${(err as Error).message}`);
      }
      if (next !== before) this.log(`${before} -> ${next} (${event.type})`);
      if (event.type === "manifest" && next === "RECEIVING") {
        this.rateClock.manifest(this.clock.now());
        this.firstManifestAt ||= this.clock.now();
      }
      if (next === "REQUESTED" && before !== "REQUESTED") this.firstRequestAt ||= at;
      this.state = next;
      if (TERMINAL.has(next) && !TERMINAL.has(before)) await this.endAttempt();
      if (event.type !== "ack_due") this.armDeadline(next);
    }
    if (this.over() && !this.ended) await this.finish();
  }

  /**
   * An attempt ended (VERIFIED or FAILED): no download, held-back ACK or stream subscription
   * outlives it (§11.4: unsubscribe at VERIFIED and FAILED). A listening device that goes on
   * remembers when it failed (§8.7) and tells onAttemptEnd.
   */
  private async endAttempt(): Promise<void> {
    this.stopDownload();
    this.dropHeldAck();
    await this.leaveStream();
    this.endedAt ||= this.clock.now();
    if (this.state !== "FAILED" || this.over()) return;
    this.x.failedAt = this.nothingToDo ? null : this.clock.now();
    this.o.onAttemptEnd?.(this.resultNow());
  }

  /** A listening device starts a new attempt after a FAILED one: the old result is cleared. */
  private beginAttempt(): void {
    this.outcome = "";
    this.detail = "";
    this.sha256 = "";
    this.nothingToDo = false;
    this.endedAt = 0;
    // The new attempt has no transfer yet: nothing may be reported on the old one's ack topic.
    this.x.manifest = null;
    this.x.ackTopic = "";
    this.x.httpFailures = 0; // §8.8 counts the failed fetches of one attempt
  }

  /**
   * Protocol §8.1: a message whose transferId is not the current one, or whose Correlation Data
   * is present and differs, is ignored. A MANIFEST, and an ERROR answering a request, must carry
   * our Correlation Data under MQTT 5; while receiving, only an ERROR naming the transfer counts.
   */
  private isCurrent(event: ReceiverEvent): boolean {
    if (event.type === "shared_chunk") return this.sharedChunkUsable(event.chunk);
    if (event.type === "http_data" || event.type === "http_end" || event.type === "http_failed") {
      return event.download === this.download.generation; // §8.8: only the running download
    }
    if (!("correlation" in event) && event.type !== "manifest" && event.type !== "error") {
      return true;
    }
    const came = (event as Came).correlation;
    const v5 = this.current?.protocolVersion === 5;
    const ours = came !== undefined && bytesEqual(came, this.x.correlation);
    if (v5 && came !== undefined && came.length > 0 && !ours) return false;
    const transferId = this.x.manifest?.transferId;
    switch (event.type) {
      case "manifest":
        return !v5 || ours;
      case "error":
        return this.state === "REQUESTED" ? !v5 || ours : event.error.transferId === transferId;
      case "chunk":
        return event.chunk.transferId === transferId;
      case "bad_chunk":
        return event.transferId === transferId;
    }
    return true;
  }

  /**
   * §11.4: a CHUNK on the shared topic counts only when it is of our stream, the chunk wanted
   * next, and fits the MANIFEST; every other one is dropped without an answer or a timer restart.
   */
  private sharedChunkUsable(c: Chunk): boolean {
    const m = this.x.manifest;
    if (!m || this.x.streamId === 0 || c.transferId !== this.x.streamId) return false;
    const offset = c.index * m.chunkSize;
    return c.index === this.x.next && c.index < m.chunkCount && c.offset === offset &&
      c.length === Math.min(m.chunkSize, m.size - offset);
  }

  /**
   * Arms the one deadline a state has: idle in REQUESTED and RECEIVING, back-off in BACKING_OFF,
   * the poll interval in IDLE and FAILED of a listening device (`pollMs`, unless given), the
   * drawn delay in OFFER_DELAY.
   */
  private armDeadline(state: ReceiverState, pollMs = this.o.pollMs): void {
    this.cancelDeadline?.();
    this.cancelDeadline = null;
    const ms = state === "REQUESTED" || state === "RECEIVING"
      ? this.o.idleTimeoutMs
      : state === "BACKING_OFF"
      ? this.x.backoffMs
      : (state === "IDLE" || state === "FAILED") && this.o.listen && !this.stopping &&
          pollMs !== undefined
      ? pollMs
      : state === "OFFER_DELAY"
      ? this.x.offerDelayMs
      : -1;
    if (ms < 0) return;
    this.cancelDeadline = this.clock.setTimer(ms, () => {
      this.cancelDeadline = null;
      this.post({ type: "timeout" });
    });
  }

  // ---- what handlers may do (Device) ----

  /** @internal The open connection. */
  link(): Link {
    if (!this.current) throw new Error(`Device "${this.o.deviceId}" has no open connection`);
    return this.current;
  }

  /** @internal Publishes an ACK or NACK of `x.next` on the accepted ack topic. */
  sendAck(nack: number): void {
    const x = this.x;
    this.dropHeldAck();
    x.unacked = 0;
    x.ackOwed = false;
    if (nack === NackReason.NONE) {
      this.stats.acks++;
      this.rateClock.acked(this.stats.bytesWritten, this.clock.now());
    } else {
      this.stats.nacks++;
      x.nackedAt = x.next;
    }
    this.link().publish(
      x.ackTopic,
      encodeAck({ transferId: x.manifest!.transferId, nextIndex: x.next, nack }),
      { qos: 1, responseTopic: this.topics.data, correlationData: x.correlation },
    ).catch((err) => this.log(`cannot publish ACK: ${(err as Error).message}`));
  }

  /** @internal Starts the ACK_FLUSH_MS bound of the oldest held-back chunk (or duplicate). */
  holdAck(): void {
    this.cancelAckFlush ??= this.clock.setTimer(this.o.ackDelayMs, () => {
      this.cancelAckFlush = null;
      this.post({ type: "ack_due" });
    });
  }

  /** @internal Drops the held-back ACK's timer. */
  dropHeldAck(): void {
    this.cancelAckFlush?.();
    this.cancelAckFlush = null;
  }

  /** @internal Subscribes to the shared image topic of the transfer (§11.4). */
  async joinStream(topic: string, streamId: number): Promise<void> {
    if (this.x.sharedTopic !== topic) await this.leaveStream();
    this.x.sharedTopic = topic;
    this.x.streamId = streamId;
    try {
      await this.link().subscribe([topic], 0);
    } catch (err) {
      // §11.3: without the stream the transfer goes on by unicast.
      this.log(`cannot subscribe to "${topic}": ${(err as Error).message}; unicast only`);
    }
  }

  /** @internal Unsubscribes from the shared image topic, if any. */
  async leaveStream(): Promise<void> {
    const topic = this.x.sharedTopic;
    if (!topic) return;
    this.x.sharedTopic = "";
    this.x.streamId = 0;
    await this.current?.unsubscribe?.([topic]).catch(() => {});
  }

  /** @internal The device's clock. */
  now(): number {
    return this.clock.now();
  }

  /** @internal Records the SHA-256 computed over the sink. */
  computedSha256(sha256: string): void {
    this.sha256 = sha256;
  }

  /** @internal Ends the run VERIFIED with STATUS VERIFIED. */
  async verified(): Promise<ReceiverState> {
    this.outcome = "VERIFIED";
    this.endedAt = this.clock.now();
    await this.sendStatus(StatusCode.VERIFIED);
    return "VERIFIED";
  }

  /**
   * @internal Ends the run FAILED with `code` (and `outcome`, a name, when it is not the
   * code's). A STATUS goes to the accepted ack topic unless `status` is false: the sender learns
   * nothing from a device that refused its ack topic, or whose transfer it ended itself.
   */
  async fail(
    code: number,
    detail: string,
    outcome = codeName(StatusCode, code),
    status = true,
  ): Promise<ReceiverState> {
    this.outcome = outcome;
    this.detail = detail;
    this.endedAt ||= this.clock.now();
    this.dropHeldAck();
    // Bytes that failed verification, or a slot that cannot be written, are not worth resuming.
    if (code === StatusCode.HASH_MISMATCH || code === StatusCode.FLASH_ERROR) {
      this.x.resumePoint = null;
    }
    if (status) await this.sendStatus(code);
    return "FAILED";
  }

  /** @internal Marks the run as "nothing to do" (UP_TO_DATE). */
  upToDate(): void {
    this.nothingToDo = true;
  }

  /** @internal Closes the connection and opens a new one. */
  async reconnect(): Promise<void> {
    await this.detach();
    await this.attach();
  }

  /** @internal Fetches the image from `url` starting at byte `from` (protocol §8.8). */
  startDownload(url: string, from: number): void {
    this.stopDownload();
    const generation = ++this.download.generation;
    const abort = new AbortController();
    this.download.abort = abort;
    const cutAfter = this.o.faults?.cutHttpAfterBytes;
    const cut = cutAfter !== undefined && !this.download.cutDone ? cutAfter : undefined;
    if (cut !== undefined) this.download.cutDone = true;
    const post = (
      e: { type: "http_end" } | { type: "http_failed"; why: string; status?: number },
    ) => this.post({ ...e, download: generation });
    fetchImage(this.o.fetch ?? fetch, url, from, abort.signal, {
      cutAfter: cut,
      data: (offset, bytes) =>
        this.post({ type: "http_data", download: generation, offset, bytes }),
      log: (line) => this.log(line),
    }).then(() => post({ type: "http_end" }), (err: DownloadFailure | Error) => {
      if (abort.signal.aborted && !(err instanceof DownloadFailure)) return;
      post({
        type: "http_failed",
        why: err.message,
        status: err instanceof DownloadFailure ? err.status : undefined,
      });
    });
  }

  /** @internal Stops the running download; its late events no longer count. */
  stopDownload(): void {
    if (!this.download.abort) return;
    this.download.generation++;
    this.download.abort.abort();
    this.download.abort = null;
  }

  /** @internal A log line of this device. */
  log(line: string): void {
    this.o.log?.(`${this.o.deviceId}: ${line}`);
  }

  // ---- plumbing ----

  private async sendStatus(code: number): Promise<void> {
    const m = this.x.manifest;
    if (!m || !this.x.ackTopic) return;
    const status = encodeStatus({
      transferId: m.transferId,
      status: code,
      sha256: m.sha256,
      version: m.version,
      detail: this.detail.slice(0, 200),
    });
    try {
      await withTimeout(
        this.link().publish(this.x.ackTopic, status, {
          qos: 1,
          responseTopic: this.topics.data,
          correlationData: this.x.correlation,
        }),
        STATUS_PUBLISH_TIMEOUT_MS,
        this.clock,
      );
    } catch (err) {
      this.log(`cannot publish STATUS: ${(err as Error).message}`);
    }
  }

  private async attach(): Promise<void> {
    const link = await this.connect();
    const generation = ++this.generation;
    link.onMessage((msg) => {
      if (generation === this.generation) this.onMessage(msg);
    });
    link.onClose?.((why) => {
      if (generation === this.generation) this.post({ type: "disconnect", why });
    });
    this.current = link;
    // §8.1: only a device that waits for updates listens for OFFERs; a one-shot run asks at once.
    const offers = this.o.listen ? [this.topics.offer] : [];
    await link.subscribe([this.topics.data, this.topics.error, ...offers], 1);
  }

  private async detach(): Promise<void> {
    this.generation++;
    const link = this.current;
    this.current = null;
    if (link) await link.close().catch(() => {});
  }

  /** Turns an inbound message into an event; the table and isCurrent() decide what counts. */
  private onMessage(msg: InboundMessage): void {
    if (msg.topic === this.topics.offer && this.o.listen) return this.onOffer(msg);
    if (this.x.sharedTopic !== "" && msg.topic === this.x.sharedTopic) {
      return this.onSharedMessage(msg);
    }
    if (msg.topic !== this.topics.data && msg.topic !== this.topics.error) return;
    const came: Came = { correlation: msg.correlationData };
    const type = peekType(msg.payload);
    // §2: the error topic carries only ERROR.
    if (msg.topic === this.topics.error && type !== MessageType.ERROR) {
      this.stats.ignored++;
      return;
    }
    try {
      if (type === MessageType.CHUNK) {
        let chunk: Chunk;
        try {
          chunk = decodeChunk(msg.payload);
        } catch (err) {
          const transferId = peekTransferId(msg.payload);
          if (transferId === null) throw err;
          this.post({ type: "bad_chunk", transferId, why: (err as Error).message, ...came });
          return;
        }
        this.post({ type: "chunk", chunk, ...came });
      } else if (type === MessageType.MANIFEST) {
        this.post({ type: "manifest", manifest: decodeManifest(msg.payload), ...came });
      } else if (type === MessageType.ERROR) {
        this.post({ type: "error", error: decodeError(msg.payload), ...came });
      } else this.stats.ignored++;
    } catch (err) {
      this.stats.ignored++;
      this.log(`ignored a message on "${msg.topic}": ${(err as Error).message}`);
    }
  }

  /** §11.4: the shared topic carries only CHUNK; anything else, or what fails to decode, is dropped. */
  private onSharedMessage(msg: InboundMessage): void {
    this.stats.sharedReceived++;
    if (peekType(msg.payload) !== MessageType.CHUNK) return;
    try {
      this.post({ type: "shared_chunk", chunk: decodeChunk(msg.payload) });
    } catch (err) {
      this.log(`dropped a message on "${msg.topic}": ${(err as Error).message}`);
    }
  }

  /**
   * §8.1: an OFFER that decodes and applies (this product, another version, a size and kind the
   * device takes) becomes an event; anything else is counted and logged, never answered.
   */
  private onOffer(msg: InboundMessage): void {
    let offer: Offer;
    try {
      if (peekType(msg.payload) !== MessageType.OFFER) {
        throw new Error(`type ${peekType(msg.payload)} is not OFFER`);
      }
      offer = decodeOffer(msg.payload);
    } catch (err) {
      this.stats.offersIgnored++;
      this.log(`ignored a message on "${msg.topic}": ${(err as Error).message}`);
      return;
    }
    const why = offer.product !== this.o.product
      ? `it is for product "${offer.product}"`
      : offer.version === (this.o.currentVersion ?? "")
      ? `version ${offer.version} is the one running`
      : offer.size > this.o.slotBytes
      ? `${offer.size} bytes exceed the slot (${this.o.slotBytes})`
      : !this.o.kinds.includes(offer.kind)
      ? `kind ${offer.kind} is not installed here`
      : null;
    if (why) this.ignoreOffer(offer, `as ${why}`);
    else this.post({ type: "offer", offer });
  }

  private ignoreOffer(offer: Offer, why: string): void {
    this.stats.offersIgnored++;
    this.log(`ignored the offer of ${offer.product}@${offer.version} ${why}`);
  }

  private async finish(): Promise<void> {
    this.ended = true;
    this.stopDownload();
    this.cancelDeadline?.();
    this.dropHeldAck();
    this.queue.length = 0;
    await this.detach();
    await this.sink.close().catch(() => {});
    this.endedAt ||= this.clock.now();
    this.finished(this.resultNow());
  }

  /** The result of the run, or of the attempt that just ended. */
  private resultNow(): ReceiverResult {
    this.stats.dropped = this.linkFaults.dropped;
    const endedAt = this.endedAt || this.clock.now();
    const seconds = (endedAt - this.startedAt) / 1000;
    this.rateClock.end(endedAt);
    const rate = transferRate(this.stats.bytesWritten, this.rateClock.seconds);
    const m = this.x.manifest;
    return {
      ...this.stats,
      deviceId: this.o.deviceId,
      status: this.outcome,
      ok: this.state === "VERIFIED" || this.nothingToDo,
      detail: this.detail,
      transferId: m?.transferId ?? 0,
      version: m?.version ?? "",
      size: m?.size ?? 0,
      sha256: this.sha256,
      expectedSha256: m ? toHex(m.sha256) : "",
      seconds,
      rateSeconds: this.rateClock.seconds,
      mibPerSecond: Number.isFinite(rate) ? rate / MiB : 0,
      manifestSeconds: this.firstManifestAt > 0 && this.firstRequestAt > 0
        ? (this.firstManifestAt - this.firstRequestAt) / 1000
        : NaN,
    };
  }
}

/** The device's sink: the chosen one, slowed by the flash timing, with flash faults outermost. */
function deviceSink(options: ReceiverOptions, faults: ReceiverFaults, clock: SimClock): FlashSink {
  const chosen = options.sink ?? "memory";
  let sink: FlashSink = typeof chosen === "object"
    ? chosen
    : chosen === "memory"
    ? new MemorySink()
    : new FileSink(chosen);
  const timing = faults.slowFlashKiBps ? flashAtRate(faults.slowFlashKiBps) : options.flashTiming;
  if (timing) sink = new TimedSink(sink, timing, clock);
  if (faults.failWriteChunk !== undefined) {
    sink = new FaultySink(sink, [faults.failWriteChunk + 1]);
  }
  return sink;
}

/** A download the server answered with a status other than the bytes asked for. */
class DownloadFailure extends Error {
  constructor(message: string, readonly status?: number) {
    super(message);
  }
}

/**
 * Fetches `url` from byte `from` and hands each slice of the body to `data` with its offset;
 * resolves when the body ends, rejects with a {@link DownloadFailure} when the server refuses or
 * answers another range, or when `cutAfter` bytes have come (a simulated cut connection).
 */
async function fetchImage(
  get: NonNullable<ReceiverOptions["fetch"]>,
  url: string,
  from: number,
  signal: AbortSignal,
  o: {
    cutAfter?: number;
    data: (offset: number, bytes: Uint8Array) => void;
    log: (line: string) => void;
  },
): Promise<void> {
  const headers: Record<string, string> = from > 0 ? { Range: `bytes=${from}-` } : {};
  const res = await get(url, { headers, signal });
  const range = /^bytes (\d+)-\d+\/\d+$/.exec(res.headers.get("content-range") ?? "");
  const start = res.status === 206 && range ? Number(range[1]) : res.status === 200 ? 0 : -1;
  if (start !== from) {
    await res.body?.cancel();
    const what = res.status === 200 || res.status === 206
      ? `bytes from ${start}, asked from ${from}`
      : `status ${res.status}`;
    throw new DownloadFailure(`the server answered ${what}`, res.status);
  }
  let offset = from;
  let taken = 0;
  for await (const piece of res.body ?? []) {
    let bytes = piece;
    if (o.cutAfter !== undefined && taken + bytes.length >= o.cutAfter) {
      bytes = bytes.subarray(0, o.cutAfter - taken);
      if (bytes.length > 0) o.data(offset, bytes);
      o.log(`fault: HTTP connection cut after ${o.cutAfter} bytes`);
      await res.body?.cancel().catch(() => {});
      throw new DownloadFailure(`connection cut after ${o.cutAfter} bytes`);
    }
    taken += bytes.length;
    o.data(offset, bytes);
    offset += bytes.length;
  }
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

async function withTimeout<T>(p: Promise<T>, ms: number, clock: SimClock): Promise<T> {
  let cancel: (() => void) | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        cancel = clock.setTimer(ms, () => reject(new Error(`no answer within ${ms} ms`)));
      }),
    ]);
  } finally {
    cancel?.();
  }
}
