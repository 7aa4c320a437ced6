/**
 * The sender service: routes each inbound message to its handler (`handlers/`: request, ack,
 * status), runs the deadline timer, and turns every closed transfer into its record, its counters
 * and its listeners' call (docs/protocol.md §2.1, §5, §7). It never lets bad input crash it.
 *
 * The timer runs only when there is something to time: every `tickMs` while a transfer is open
 * (its deadlines, §7), once a second while devices were heard from or still hold rate state (the
 * sweep), and not at all when the sender is idle. An idle sender then spends no CPU on transfers
 * (the service's event-loop watch and the rollout driver's idle read wake it apart; bench/sender_cpu.ts measured the 50 ms tick of an idle sender as CPU that a slow transfer
 * was charged per MiB); an inbound message or an opened transfer starts it again.
 *
 * It talks to the broker only through the {@link Transport} interface and to storage only
 * through {@link SenderCatalog}, so tests can drive it with an in-memory transport.
 * @module
 */

import {
  parseInboundTopic,
  prefixProblem,
  senderIdProblem,
  senderSubscriptions,
} from "../protocol/mod.ts";
import type { TransferRecord } from "../catalog/mod.ts";
import type { InboundMessage } from "../transport/types.ts";
import { Admission } from "./admission.ts";
import { Backlog } from "./backlog.ts";
import type { SenderContext } from "./context.ts";
import { handleAck } from "./handlers/ack.ts";
import { handleRequest } from "./handlers/request.ts";
import { handleStatus } from "./handlers/status.ts";
import { type SenderOptions, type SenderSettings, senderSettings } from "./options.ts";
import { Recorder } from "./recording.ts";
import { TransferRegistry } from "./registry.ts";
import { Replies } from "./replies.ts";
import { emptyStats, type SenderStats } from "./stats.ts";
import type { Transfer, TransferEnd, TransferProgress } from "./transfer.ts";
import { TransferImages } from "./transfer_images.ts";
import { RolloutDriver } from "./rollouts.ts";
import { type SharedStream, SharedStreams } from "./shared_stream.ts";
import { NO_OBSERVER, type SenderObserver } from "./observer.ts";

export type { SenderCatalog, SenderLog, SenderOptions } from "./options.ts";
export type { SenderStats } from "./stats.ts";
export { NO_OBSERVER, type SenderObserver } from "./observer.ts";
export { MAX_BACKLOG_BYTES } from "./backlog.ts";

/**
 * How long {@link Sender.stop} waits for the records of the transfers it closes to be written:
 * bounded, so shutdown is (with the transport's own bound) a few seconds at most.
 */
const SHUTDOWN_RECORDS_MS = 2000;

/** How often the timer drops the rate buckets of devices that have refilled. */
const SWEEP_EVERY_MS = 1000;

/** Why the timer is armed; see the module doc. */
type TimerMode = "transfers" | "sweep";

let internalsOf: (sender: Sender) => SenderInternals;

/** Test-only view of a sender's per-device state; see {@linkcode _senderInternals}. */
export interface SenderInternals {
  /** Entries of every map keyed by device or transfer, and the open shared streams, by name. */
  perDeviceEntries(): Record<string, number>;
}

/**
 * Test-only: counts the entries of the sender's per-device maps, so a test can check that a
 * device without a transfer costs no state. Not part of the sender API.
 */
export function _senderInternals(sender: Sender): SenderInternals {
  return internalsOf(sender);
}

/** What {@link Sender.snapshot} gives: counters since start and the gauges of now. */
export interface SenderSnapshot {
  /** Counters since start; chunk and resend counts include the open transfers'. */
  stats: SenderStats;
  /** Transfers open now. */
  openTransfers: number;
  /** Bytes published since start: MANIFEST, CHUNK and ERROR messages (topic, properties, payload). */
  publishedBytes: number;
  /** Bytes handed to the transport and not yet written to its socket. */
  backlogBytes: number;
}

/** The sender service; see the module doc. */
export class Sender {
  /** Counters since start. */
  readonly stats: SenderStats = emptyStats();
  readonly #settings: SenderSettings;
  readonly #ctx: SenderContext;
  readonly #listeners: Array<(record: TransferRecord) => void> = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerMode: TimerMode | undefined;
  #timerStopped = false;
  #lastSweep = -Infinity;
  /** Inbound messages since the last sweep, and whether the interval before it had any. */
  #heardSinceSweep = 0;
  #heardBeforeSweep = false;
  /** Timer ticks so far (tests of the idle sender read it). */
  timerTicks = 0;

  static {
    internalsOf = (s) => ({
      perDeviceEntries: () => ({
        ...s.#ctx.transfers.perDeviceEntries,
        ...s.#ctx.admission.perDeviceEntries,
        ...s.#ctx.replies.perDeviceEntries,
        ...s.#ctx.recorder.perDeviceEntries,
        ...s.#ctx.rollouts?.perDeviceEntries,
        heldByBacklog: s.#ctx.backlog.heldCount,
        openStreams: s.#ctx.streams.size,
      }),
    });
  }

  private constructor(options: SenderOptions) {
    const settings = senderSettings(options);
    this.#settings = settings;
    const { log, transport } = settings;
    const safely = (fn: () => void) => {
      try {
        fn();
      } catch (err) {
        log.warn(`internal error: ${(err as Error).stack ?? err}`);
      }
    };
    // An opened transfer needs the deadline timer at its full rate.
    const transfers = new TransferRegistry(() => this.#wake("transfers"));
    const recorder = new Recorder(settings.catalog, { senderId: settings.senderId, log });
    const backlog = new Backlog<Transfer | SharedStream>(transport, {
      maxBytes: settings.maxBacklogBytes,
      warn: (line) => log.warn(line),
      resume: (t) => safely(() => t.dispatch({ type: "resume" }, settings.now())),
    });
    this.#ctx = {
      settings,
      stats: this.stats,
      transfers,
      admission: new Admission(settings),
      replies: new Replies((topic, payload, o) => backlog.publish(topic, payload, o), {
        prefix: settings.prefix,
        log,
        stats: this.stats,
        errorRate: settings.errorRate,
        now: settings.now,
      }),
      images: new TransferImages({
        leaseImage: settings.catalog.leaseImage?.bind(settings.catalog),
        readImage: (sha) => settings.catalog.readImage(sha),
        sign: settings.sign,
      }),
      backlog,
      streams: new SharedStreams({
        prefix: settings.prefix,
        settings: settings.shared,
        dataQos: settings.dataQos,
        now: settings.now,
        send: (topic, payload, o) => backlog.publish(topic, payload, o),
        mayPublish: (s) => backlog.mayPublish(s),
        stats: this.stats,
        log: (line) => log.info(line),
      }),
      recorder,
      observer: NO_OBSERVER,
      rollouts: settings.rollouts &&
        new RolloutDriver(settings.rollouts, {
          catalog: settings.catalog,
          transport,
          prefix: settings.prefix,
          log,
        }),
      transferClosed: (end) => this.#closed(end),
      safely,
    };
  }

  /** Subscribes to requests, acks and status, and starts the deadline timer. */
  static async start(options: SenderOptions): Promise<Sender> {
    const problem = senderIdProblem(options.senderId) ?? prefixProblem(options.prefix);
    if (problem) throw new Error(`Cannot start the sender: ${problem}; choose another one`);
    const s = new Sender(options);
    const o = s.#settings;
    await s.#ctx.recorder.closeInterrupted();
    const subs = senderSubscriptions(o.prefix, o.senderId, o.sharedGroup);
    o.transport.onMessage((m) => s.handle(m));
    await o.transport.subscribe([subs.requests, subs.acks, subs.status], 1);
    await s.#ctx.rollouts?.start();
    s.#wake("sweep");
    return s;
  }

  /** Registers a listener called with the record of every transfer that ends. */
  onTransferEnd(listener: (record: TransferRecord) => void): void {
    this.#listeners.push(listener);
  }

  /**
   * Makes `observer` the one that hears the sender's per-request measurements (the metrics
   * surface); it replaces the previous one.
   */
  observe(observer: SenderObserver): void {
    this.#ctx.observer = observer;
  }

  /**
   * The counters as of now, open transfers' chunks and resends included, with the gauges a
   * scrape reads: a copy, built on demand (never on the send path) in time linear in the open
   * transfers.
   */
  snapshot(): SenderSnapshot {
    const stats: SenderStats = {
      ...this.stats,
      outcomes: { ...this.stats.outcomes },
      errorsSent: { ...this.stats.errorsSent },
      nacks: { ...this.stats.nacks },
    };
    const open = this.#ctx.transfers.all();
    for (const t of open) {
      stats.chunksSent += t.chunksSent;
      stats.resends += t.resends;
      stats.resendsAfterNack += t.resendsAfterNack;
    }
    return {
      stats,
      openTransfers: open.length,
      publishedBytes: this.#ctx.backlog.publishedTotal,
      backlogBytes: this.#ctx.backlog.bytes,
    };
  }

  /** The rollout driver, when the sender takes part in rollouts (tests step it). */
  get rollouts(): RolloutDriver | undefined {
    return this.#ctx.rollouts;
  }

  /** Open transfers, for the CLI and tests. */
  openTransfers(): TransferProgress[] {
    return this.#ctx.transfers.all().map((t) => t.progress());
  }

  /**
   * Checks every transfer's deadline and forgets the rate limits of quiet devices; called by the
   * timer (or by a test with its own clock).
   */
  tick(now = this.#settings.now()): void {
    for (const t of this.#ctx.transfers.all()) {
      this.#ctx.safely(() => t.dispatch({ type: "tick" }, now));
    }
    if (now - this.#lastSweep >= SWEEP_EVERY_MS) {
      this.#lastSweep = now;
      this.#heardBeforeSweep = this.#heardSinceSweep > 0;
      this.#heardSinceSweep = 0;
      this.#ctx.admission.sweep(now);
      this.#ctx.replies.sweep(now);
    }
  }

  /**
   * What the timer has to do next: `transfers` while one is open; `sweep` while a sweep has
   * something to drop, count or log (a device heard from since the sweep before the last one, a
   * rate bucket not yet refilled; the one quiet sweep after the last message resets the
   * admission's BUSY backoff); undefined when idle.
   */
  #timerNeed(): TimerMode | undefined {
    const ctx = this.#ctx;
    if (ctx.transfers.size > 0) return "transfers";
    if (this.#heardSinceSweep > 0 || this.#heardBeforeSweep) return "sweep";
    const held = Object.values(ctx.admission.perDeviceEntries).some((n) => n > 0) ||
      Object.values(ctx.replies.perDeviceEntries).some((n) => n > 0);
    return held ? "sweep" : undefined;
  }

  /**
   * Arms the timer for `need` unless it is armed for as much already (a sweep timer is replaced
   * by the faster transfer timer).
   */
  #wake(need: TimerMode): void {
    const tickMs = this.#settings.tickMs;
    if (tickMs <= 0 || this.#timerStopped) return;
    if (this.#timerMode === "transfers" || this.#timerMode === need) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    const delay = need === "transfers" ? tickMs : Math.min(
      SWEEP_EVERY_MS,
      Math.max(tickMs, this.#lastSweep + SWEEP_EVERY_MS - this.#settings.now()),
    );
    this.#timerMode = need;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#timerMode = undefined;
      this.timerTicks++;
      this.tick();
      const next = this.#timerNeed();
      if (next) this.#wake(next);
    }, delay);
  }

  /** Handles one inbound message; never throws. */
  handle(message: InboundMessage): void {
    const ctx = this.#ctx;
    const { prefix, senderId, log } = this.#settings;
    this.#heardSinceSweep++;
    if (this.#timerMode === undefined) this.#wake("sweep");
    try {
      const where = parseInboundTopic(prefix, message.topic);
      if (!where) return ctx.replies.drop(`message on unexpected topic "${message.topic}"`);
      if (where.kind === "request") {
        handleRequest(ctx, where.deviceId, message).catch((err) =>
          log.warn(`request from "${where.deviceId}" failed inside the sender: ${err}`)
        );
      } else if (where.kind === "ack") {
        if (where.senderId !== senderId) {
          return ctx.replies.drop(`ack for another sender "${where.senderId}"`);
        }
        handleAck(ctx, where.deviceId, message);
      } else handleStatus(ctx, where.deviceId, message, { onAckTopic: false });
    } catch (err) {
      log.warn(`message on "${message.topic}" failed inside the sender: ${err}`);
    }
  }

  /** Aborts every open transfer (ERROR TRANSFER_ABORTED with a retry hint) and stops the timer. */
  async stop(): Promise<void> {
    // The driver stops first: the transfers the shutdown aborts are no device's failure. What
    // it still writes is waited for below, with the records, under the same bound.
    await this.#ctx.rollouts?.stop();
    this.#ctx.admission.stop();
    this.#timerStopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    const now = this.#settings.now();
    const retryAfterMs = this.#settings.busyRetryAfterMs;
    for (const t of this.#ctx.transfers.all()) {
      this.#ctx.safely(() => t.dispatch({ type: "shutdown", retryAfterMs }, now));
    }
    // The transfers' ends emptied their streams; a stream without members ends on its own.
    this.#ctx.streams.closeAll();
    await this.#ctx.recorder.flush(SHUTDOWN_RECORDS_MS, [this.#ctx.rollouts?.flush()]);
  }

  #closed(end: TransferEnd): void {
    const t = this.#ctx.transfers.remove(end.transferId);
    if (t) this.#ctx.backlog.forget(t);
    end.image.release?.();
    this.stats.chunksSent += end.chunksSent;
    this.stats.repairBytes += end.repairBytes;
    this.stats.resends += end.resends;
    this.stats.resendsAfterNack += end.resendsAfterNack;
    const outcome = end.outcome.outcome;
    this.stats.outcomes[outcome] = (this.stats.outcomes[outcome] ?? 0) + 1;
    if (end.outcome.ok) this.stats.transfersOk++;
    else this.stats.transfersFailed++;
    const record = this.#ctx.recorder.transferEnded(end);
    this.#ctx.rollouts?.transferEnded(record).catch((err) =>
      this.#settings.log.warn(`cannot record the end of transfer ${record.transferId}: ${err}`)
    );
    for (const l of this.#listeners) this.#ctx.safely(() => l(record));
  }
}
