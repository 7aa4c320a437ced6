/**
 * Settings of a {@link Sender} and the narrow interfaces it is given: the catalog methods it
 * calls and where it logs. Defaults are filled in once here.
 * @module
 */

import {
  DEFAULT_CHUNK_BYTES,
  DEFAULT_WINDOW,
  ERROR_BURST,
  ERROR_REFILL_MS,
  MAX_WINDOW,
  REQUEST_BURST,
  REQUEST_REFILL_MS,
} from "../protocol/mod.ts";
import type { Catalog } from "../catalog/mod.ts";
import type { Transport } from "../transport/types.ts";
import { MAX_BACKLOG_BYTES } from "./backlog.ts";
import { MAX_HELD_TRANSFERS, MAX_RESOLVING_REQUESTS } from "./admission.ts";
import type { RateLimitOptions } from "./rate_limit.ts";
import { DEFAULT_TIMING, type TransferTiming } from "./transfer.ts";
import { DEFAULT_SHARED_SETTINGS, type SharedSettings } from "./shared_stream.ts";
import type { InventoryStore } from "../inventory/store.ts";
import type { RolloutStore } from "../rollout/store.ts";

/** The part of the catalog the sender uses; tests may pass a stand-in with these methods. */
export type SenderCatalog =
  & Pick<Catalog, "get" | "resolve" | "readImage" | "recordTransfer" | "recordDeviceStatus">
  & Partial<
    Pick<
      Catalog,
      "recordOpenTransfer" | "closeInterruptedTransfers" | "leaseImage" | "flushRecords"
    >
  >;

/** How a sender takes part in rollouts: the stores on the catalog's KV and its own limits. */
export interface RolloutWiring {
  /** The rollout store (`rolloutStore(catalog)`). */
  rollouts: RolloutStore;
  /** The device inventory (`inventoryStore(catalog)`). */
  inventory: InventoryStore;
  /** Serve a device that names an explicit version (not `latest`); default true. */
  allowExplicitVersions?: boolean;
  /** OFFERs this sender publishes per second at most, over all rollouts; default 100. */
  offersPerSecond?: number;
  /** Interval of the driver's timer in ms; default 250. */
  tickMs?: number;
  /** Wall clock for device deadlines, ms since the epoch; default `Date.now` (the stores'). */
  now?: () => number;
}

/**
 * HTTP download mode (docs/protocol.md §7.3), wired by the service when its HTTP server runs: a
 * REQUEST with flag `HTTP`, or any REQUEST for one of `products`, is answered with a MANIFEST
 * carrying a download URL instead of CHUNKs.
 */
export interface HttpDownloadWiring {
  /** Products served over HTTP whether or not the device asks (`*` = all). */
  products: readonly string[];
  /**
   * The URL from which `deviceId` downloads image `sha256` (hex), with its token; null while no
   * HTTP server serves downloads (the request is then answered with CHUNKs).
   */
  urlFor(deviceId: string, sha256: string): Promise<string | null>;
  /**
   * How long a URL transfer waits for the device's STATUS before it is aborted, in ms: the
   * token's lifetime (a download may start until then) plus the status timeout.
   */
  statusDeadlineMs: number;
}

import type { SenderLog } from "./log.ts";
export type { SenderLog };

/** Settings of a {@link Sender}. */
export interface SenderOptions {
  transport: Transport;
  catalog: SenderCatalog;
  prefix: string;
  senderId: string;
  /** Shared-subscription group for several instances; none by default. */
  sharedGroup?: string;
  /** QoS of MANIFEST and CHUNK messages (ERROR: protocol §3, `errorQos`); default 0, chosen by measurement. */
  dataQos?: 0 | 1;
  defaultChunkSize?: number;
  defaultWindow?: number;
  /** Upper bound of the granted window (≤ MAX_WINDOW), e.g. to respect broker queue limits. */
  maxWindow?: number;
  /** Adapt chunks in flight to the measured round trip. */
  adaptiveWindow?: boolean;
  /** Open transfers at most; further requests get BUSY. */
  maxTransfers?: number;
  /**
   * Requests being resolved (catalog, inventory, rollouts) at once at most; further requests get
   * BUSY at once; default {@link MAX_RESOLVING_REQUESTS}.
   */
  maxResolving?: number;
  /**
   * Transfers the outgoing backlog holds back above which new requests get BUSY; default
   * {@link MAX_HELD_TRANSFERS}.
   */
  maxHeld?: number;
  busyRetryAfterMs?: number;
  /** REQUESTs per device: default REQUEST_BURST, then one per REQUEST_REFILL_MS (protocol §6). */
  requestRate?: RateLimitOptions;
  /** ERRORs per device: default ERROR_BURST, then one per ERROR_REFILL_MS (protocol §6). */
  errorRate?: RateLimitOptions;
  timing?: Partial<TransferTiming>;
  /** Interval of the timer that checks every transfer's deadline. */
  tickMs?: number;
  /**
   * Bytes handed to the transport and not yet written to its socket above which transfers
   * stop sending chunks until it drains; default {@link MAX_BACKLOG_BYTES}.
   */
  maxBacklogBytes?: number;
  /**
   * Signs `sha256` of an image whose catalog entry carries no signature; the signature goes into
   * the MANIFEST. An image signed offline keeps its stored signature.
   */
  sign?: (sha256: Uint8Array) => Promise<Uint8Array>;
  log?: SenderLog;
  now?: () => number;
  /**
   * Rollouts (docs/rollouts.md): when given, a device asking for `latest` gets what the rollout
   * holding it assigns, or UP_TO_DATE, and every REQUEST, STATUS and transfer end is recorded
   * in the inventory and the rollout store. Without it `latest` is the catalog's newest version
   * (a sender driven by a test with a stand-in catalog).
   */
  rollouts?: RolloutWiring;
  /**
   * One-to-many delivery (docs/protocol.md §11): devices that ask with the SHARED flag under
   * MQTT 5 share one stream of each image; off unless `enabled`.
   */
  shared?: Partial<SharedSettings>;
  /** HTTP download mode (protocol §7.3); without it every transfer sends CHUNKs. */
  httpDownload?: HttpDownloadWiring;
}

/** {@link SenderOptions} with every default filled in. */
export type SenderSettings =
  & Required<
    Omit<SenderOptions, "sharedGroup" | "sign" | "timing" | "rollouts" | "httpDownload" | "shared">
  >
  & {
    timing: TransferTiming;
    shared: SharedSettings;
    sharedGroup?: string;
    sign?: SenderOptions["sign"];
    rollouts?: RolloutWiring;
    httpDownload?: HttpDownloadWiring;
  };

const QUIET_LOG: SenderLog = { info: () => {}, warn: () => {} };

/**
 * The one home of the sender's transfer defaults; the configuration's built-in defaults
 * (`DEFAULT_CONFIG.transfer`) are made from these and from {@link DEFAULT_TIMING}.
 */
export const SENDER_DEFAULTS = {
  /** QoS 0 for data, chosen by measurement (docs/performance.md). */
  dataQos: 0 as 0 | 1,
  defaultChunkSize: DEFAULT_CHUNK_BYTES,
  defaultWindow: DEFAULT_WINDOW,
  maxWindow: MAX_WINDOW,
  adaptiveWindow: true,
  maxTransfers: 2000,
  maxResolving: MAX_RESOLVING_REQUESTS,
  maxHeld: MAX_HELD_TRANSFERS,
  busyRetryAfterMs: 5000,
} as const;

/** Fills in the defaults of `options`. */
export function senderSettings(options: SenderOptions): SenderSettings {
  return {
    ...SENDER_DEFAULTS,
    requestRate: { burst: REQUEST_BURST, refillMs: REQUEST_REFILL_MS },
    errorRate: { burst: ERROR_BURST, refillMs: ERROR_REFILL_MS },
    tickMs: 50,
    maxBacklogBytes: MAX_BACKLOG_BYTES,
    log: QUIET_LOG,
    now: () => performance.now(),
    ...options,
    timing: { ...DEFAULT_TIMING, ...options.timing },
    shared: { ...DEFAULT_SHARED_SETTINGS, ...options.shared },
  };
}
