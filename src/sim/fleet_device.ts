/**
 * One long-lived simulated device of a fleet: it runs a version, stays connected, asks for
 * `latest` now and then (a poll), downloads what the sender gives it, "reboots" (closes its
 * connection, waits, connects again running the new version) and reports the boot outcome on its
 * status topic, as the firmware does after a real reboot (docs/protocol.md §2: STATUS BOOTED or
 * ROLLED_BACK, transferId 0).
 *
 * The transfer itself is the ordinary {@link Receiver}, one per boot, in `listen` mode on a view
 * of the device's connection: it outlives its failed attempts (and takes a later OFFER after the
 * back-off of protocol §8.7, as the firmware does), and the device's one MQTT connection (client
 * id = device id) outlives the receivers, so the device is reachable between them.
 * @module
 */

import { deviceTopics, encodeStatus, fromHex, StatusCode } from "../protocol/mod.ts";
import type { InboundMessage, Transport } from "../transport/types.ts";
import { realClock, type SimClock } from "./clock.ts";
import type { Link } from "./faulty_link.ts";
import { FaultySink } from "./faulty_sink.ts";
import type { FlashTiming } from "./flash_timing.ts";
import { Receiver, type ReceiverResult, type ReceiverState } from "./receiver.ts";
import { type FlashSink, MemorySink } from "./sink.ts";

/** What a fleet device is doing now, as the fleet view counts it. */
export type FleetPhase =
  | "IDLE"
  | "WAITING"
  | "ASKING"
  | "DOWNLOADING"
  | "REBOOTING"
  | "STOPPED";

/** The phases in the order the live view lists them. */
export const FLEET_PHASES: readonly FleetPhase[] = [
  "IDLE",
  "WAITING",
  "ASKING",
  "DOWNLOADING",
  "REBOOTING",
  "STOPPED",
];

/** How a device's last update attempt ended. */
export type FleetOutcome = "" | "BOOTED" | "ROLLED_BACK" | "DOWNLOAD_FAILED";

/** Settings of a {@link FleetDevice}. */
export interface FleetDeviceOptions {
  deviceId: string;
  /** Opens the device's MQTT connection (client id = device id); called once per boot. */
  connect: () => Promise<Transport>;
  prefix: string;
  product: string;
  /** The version the device runs at start. */
  version: string;
  /** Ask for `latest` this often while idle; undefined: never on its own. */
  pollMs?: number;
  /** The first poll after a boot comes after this long (spreads a fleet's polls); default pollMs. */
  firstPollMs?: number;
  /** The new image fails its self-test after the reboot: report ROLLED_BACK, keep the version. */
  failBoot?: boolean;
  /** Every flash write fails, so every download ends FLASH_ERROR. */
  failDownload?: boolean;
  /** Draws the delay after an OFFER; default Math.random (the fleet passes a seeded one). */
  random?: () => number;
  /** How long a reboot takes; default {@link DEFAULT_REBOOT_MS}. */
  rebootMs?: number;
  chunkSize?: number;
  window?: number;
  idleTimeoutMs?: number;
  flashTiming?: FlashTiming;
  clock?: SimClock;
  log?: (line: string) => void;
}

/** Default time a simulated reboot takes, connection closed. */
export const DEFAULT_REBOOT_MS = 200;

/** Counters and state of one fleet device, for the view, the JSON output and tests. */
export interface FleetDeviceSnapshot {
  deviceId: string;
  version: string;
  phase: FleetPhase;
  lastOutcome: FleetOutcome;
  /** Updates that booted. */
  updates: number;
  rollbacks: number;
  downloadFailures: number;
  /** Attempts whose REQUEST the sender answered UP_TO_DATE. */
  upToDate: number;
  /** REQUESTs sent in all attempts. */
  requests: number;
  /** OFFERs that made the device ask (§8.1), in all attempts. */
  offers: number;
  /** Bytes written in the attempt under way. */
  offset: number;
  size: number;
  /** Whether this device was chosen to fail its boot / its downloads. */
  failBoot: boolean;
  failDownload: boolean;
}

/** One device of a fleet; call {@link FleetDevice.run} once, {@link FleetDevice.stop} to end. */
export class FleetDevice {
  private version: string;
  private phase: FleetPhase = "IDLE";
  private lastOutcome: FleetOutcome = "";
  private readonly counts = { updates: 0, rollbacks: 0, downloadFailures: 0, upToDate: 0 };
  private requestsBefore = 0;
  private offersBefore = 0;
  private receiver: Receiver | null = null;
  private stopped = false;
  private wake: (() => void) | null = null;
  private readonly clock: SimClock;

  /** Sets the device up; nothing happens until {@link FleetDevice.run}. */
  constructor(private readonly o: FleetDeviceOptions) {
    this.version = o.version;
    this.clock = o.clock ?? realClock;
  }

  /** Device id. */
  get deviceId(): string {
    return this.o.deviceId;
  }

  /** The version the device runs now. */
  get runningVersion(): string {
    return this.version;
  }

  /** Boots, listens, updates and reboots until stopped; resolves when stopped (never rejects). */
  async run(): Promise<void> {
    let boot: Uint8Array | null = null;
    let firstPoll = this.o.firstPollMs ?? this.o.pollMs;
    while (!this.stopped) {
      let link: Transport;
      try {
        link = await this.o.connect();
      } catch (err) {
        this.log(`cannot connect: ${(err as Error).message}; trying again`);
        await this.pause(1000);
        continue;
      }
      const hub = new LinkHub(link);
      if (boot) {
        await link.publish(deviceTopics(this.o.prefix, this.o.deviceId).status, boot, { qos: 1 })
          .catch((err) => this.log(`cannot publish the boot STATUS: ${(err as Error).message}`));
        boot = null;
      }
      const result = await this.attempts(hub, firstPoll);
      firstPoll = this.o.pollMs;
      if (!this.stopped && result.status === "VERIFIED") boot = this.reboot(result);
      await link.close().catch(() => {});
      if (boot && !this.stopped) {
        this.phase = "REBOOTING";
        await this.pause(this.o.rebootMs ?? DEFAULT_REBOOT_MS);
      }
    }
    this.phase = "STOPPED";
  }

  /** Asks for `latest` now (as a poll would) when idle. */
  checkNow(): void {
    this.receiver?.checkNow();
  }

  /** Stops the device: the attempt under way ends, the connection closes. */
  stop(): void {
    this.stopped = true;
    this.receiver?.stop("the fleet stopped");
    this.wake?.();
  }

  /** A snapshot for the view. */
  snapshot(): FleetDeviceSnapshot {
    const p = this.receiver?.progress();
    return {
      deviceId: this.o.deviceId,
      version: this.version,
      phase: this.phase === "IDLE" && this.receiver ? phaseOf(this.receiver.state) : this.phase,
      lastOutcome: this.lastOutcome,
      ...this.counts,
      requests: this.requestsBefore + (this.receiver?.stats.requests ?? 0),
      offers: this.offersBefore + (this.receiver?.stats.offersTaken ?? 0),
      offset: p?.offset ?? 0,
      size: p?.size ?? 0,
      failBoot: this.o.failBoot ?? false,
      failDownload: this.o.failDownload ?? false,
    };
  }

  /**
   * The attempts of one boot: a listening receiver on the connection, until an image is VERIFIED
   * or the device stops. Each failed attempt is counted as it ends.
   */
  private async attempts(hub: LinkHub, firstPollMs: number | undefined): Promise<ReceiverResult> {
    const receiver = new Receiver({
      deviceId: this.o.deviceId,
      connect: () => Promise.resolve(hub.borrow()),
      prefix: this.o.prefix,
      product: this.o.product,
      currentVersion: this.version,
      wantedVersion: "latest",
      chunkSize: this.o.chunkSize,
      window: this.o.window,
      idleTimeoutMs: this.o.idleTimeoutMs,
      sink: this.sink(),
      flashTiming: this.o.flashTiming,
      clock: this.o.clock,
      log: this.o.log,
      listen: true,
      pollMs: this.o.pollMs,
      firstPollMs,
      random: this.o.random,
      onAttemptEnd: (result) => {
        if (result.status === "UP_TO_DATE") this.counts.upToDate++;
        else if (result.transferId !== 0) {
          this.counts.downloadFailures++;
          this.lastOutcome = "DOWNLOAD_FAILED";
        }
      },
    });
    this.receiver = receiver;
    this.phase = "IDLE";
    const result = await receiver.run();
    this.requestsBefore += receiver.stats.requests;
    this.offersBefore += receiver.stats.offersTaken;
    this.receiver = null;
    return result;
  }

  /** After a VERIFIED image: the boot outcome to report once connected again. */
  private reboot(result: ReceiverResult): Uint8Array {
    const ok = !this.o.failBoot;
    if (ok) {
      this.version = result.version;
      this.counts.updates++;
      this.lastOutcome = "BOOTED";
    } else {
      this.counts.rollbacks++;
      this.lastOutcome = "ROLLED_BACK";
    }
    this.log(
      ok
        ? `rebooting into ${result.version}`
        : `rebooting: ${result.version} fails its self-test, back to ${this.version}`,
    );
    return encodeStatus({
      transferId: 0,
      status: ok ? StatusCode.BOOTED : StatusCode.ROLLED_BACK,
      sha256: fromHex(result.expectedSha256),
      version: result.version,
      detail: ok ? "" : "self-test failed after the update (simulated)",
    });
  }

  private sink(): FlashSink {
    if (!this.o.failDownload) return new MemorySink();
    const sink = new FaultySink(new MemorySink());
    sink.failNext(Number.MAX_SAFE_INTEGER);
    return sink;
  }

  private async pause(ms: number): Promise<void> {
    if (this.stopped) return;
    await new Promise<void>((resolve) => {
      const cancel = this.clock.setTimer(ms, () => resolve());
      this.wake = () => {
        cancel();
        resolve();
      };
    });
    this.wake = null;
  }

  private log(line: string): void {
    this.o.log?.(`${this.o.deviceId}: ${line}`);
  }
}

/** The fleet view's phase of a receiver state. */
function phaseOf(state: ReceiverState | string): FleetPhase {
  switch (state) {
    case "IDLE":
      return "IDLE";
    case "OFFER_DELAY":
      return "WAITING";
    case "REQUESTED":
    case "BACKING_OFF":
      return "ASKING";
    case "RECEIVING":
      return "DOWNLOADING";
    default:
      return "IDLE";
  }
}

/**
 * The device's connection shared by its successive receivers: each borrows a view whose
 * `close()` only detaches it, so the connection (and the broker's view of the device) stays.
 */
class LinkHub {
  private handler: ((m: InboundMessage) => void) | null = null;

  constructor(private readonly link: Transport) {
    link.onMessage((m) => this.handler?.(m));
  }

  /** A view of the connection for one receiver. */
  borrow(): Link {
    const link = this.link;
    let attached = true;
    return {
      protocolVersion: link.protocolVersion,
      publish: (topic, payload, options) => link.publish(topic, payload, options),
      subscribe: (topics, qos) => link.subscribe(topics, qos),
      onMessage: (handler) => {
        this.handler = (m) => {
          if (attached) handler(m);
        };
      },
      close: () => {
        attached = false;
        return Promise.resolve();
      },
    };
  }
}
