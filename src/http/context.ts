/**
 * What the HTTP server's routes are given: the open catalog and the stores on its KV, the
 * running sender (live transfers, counters, rollout driver), and the HTTP settings. Routes read
 * and change the product only through these and the shared operations in `src/ops`, so the API
 * and the CLI cannot disagree.
 * @module
 */

import type { Catalog } from "../catalog/mod.ts";
import type { InventoryStore } from "../inventory/store.ts";
import type { RolloutStore } from "../rollout/store.ts";
import type { Sender, SenderLog } from "../sender/mod.ts";

/** The HTTP part of the sender's configuration (config key `http`, see config/sender.jsonc). */
export interface HttpConfig {
  /** `host:port` to listen on; empty = no HTTP server. */
  listen: string;
  /** Base URL that browsers and devices use to reach it; empty = `http://` + the listen address. */
  publicUrl: string;
  /** Comma-separated bearer tokens that may do everything. */
  adminTokens: string;
  /** Comma-separated bearer tokens that may only read. */
  readTokens: string;
  /**
   * Comma-separated products whose every REQUEST is answered with an HTTP download (a MANIFEST
   * with a URL, protocol §7.3), as if the device had asked for one; `*` = every product.
   */
  downloadProducts: string;
  /** Lifetime of a download token (the URL of such a MANIFEST), in seconds. */
  downloadTokenSeconds: number;
  /** Largest image `POST /api/images` accepts, in bytes; the body is cut off beyond it. */
  maxUploadBytes: number;
}

/** Everything a route may use. */
export interface HttpContext {
  catalog: Catalog;
  rollouts: RolloutStore;
  inventory: InventoryStore;
  /** The running sender; absent when the server runs beside a catalog only (tests of routes). */
  sender?: Sender;
  /** The sender's id (ack topics name it). */
  senderId: string;
  config: HttpConfig;
  log: SenderLog;
  /** Aborted when the server stops: long-lived responses (server-sent events) end on it. */
  stopping?: AbortSignal;
  /** Wall clock, ms since the epoch; default `Date.now`. */
  now?: () => number;
}
