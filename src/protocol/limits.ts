/**
 * Limits and timing of protocol v1, in one place (docs/protocol.md §6). Every bound the codec,
 * the sender and the simulator enforce comes from here.
 * @module
 */

/** Smallest chunk size the sender grants. */
export const MIN_CHUNK_BYTES = 256;
/** Largest chunk payload; a CHUNK message is at most this plus {@link CHUNK_HEADER_BYTES}. */
export const MAX_CHUNK_BYTES = 61440;
/** Chunk size granted when a device asks for 0. */
export const DEFAULT_CHUNK_BYTES = 4096;
/** Most unacknowledged chunks a transfer may have in flight. */
export const MAX_WINDOW = 64;
/**
 * Window granted when a device asks for 0. Measured (docs/performance.md): 8 × 4 KiB cannot
 * cover a 50 ms, 1 MiB/s link (2.09 × ideal; 64: 1.07) and held one loopback transfer at 0.31
 * of the broker ceiling (64: 0.75, 32: 0.58); the sender's backlog cap keeps fleets unharmed.
 */
export const DEFAULT_WINDOW = 64;
/** Longest `str8` / `bytes8` value. */
export const MAX_STR8_BYTES = 255;
/** Longest product name. */
export const MAX_PRODUCT_BYTES = 64;
/** Longest version string. */
export const MAX_VERSION_BYTES = 32;
/**
 * Longest MANIFEST `url` (§4.2, a `str16`): room for a public base URL of up to
 * {@link MAX_URL_BASE_BYTES} bytes and the longest download path with its token.
 */
export const MAX_URL_BYTES = 512;
/**
 * Longest path and query the sender appends to its public base URL for a download:
 * `/img/` + 64 hex + `?d=` + a device id of 64 characters percent-encoded (at most 192) +
 * `&e=` + 10 digits + `&t=` + 43 base64url characters of the HMAC (§7.3).
 */
export const MAX_DOWNLOAD_PATH_BYTES = 5 + 64 + 3 + 3 * 64 + 3 + 10 + 3 + 43;
/** Longest public base URL of the HTTP server that still leaves room for every download path. */
export const MAX_URL_BASE_BYTES = MAX_URL_BYTES - MAX_DOWNLOAD_PATH_BYTES;
/** Bytes of a MANIFEST `signature` when present: ECDSA P-256 `r‖s` (§4.2). */
export const SIGNATURE_BYTES = 64;
/** Resend timeout before the first round-trip sample of a transfer (protocol §6, §7). */
export const ACK_TIMEOUT_MS = 2000;
/**
 * Floor of the estimated resend timeout (§7): covers the worst ESP32 4 KiB sector erase (about
 * 300 ms by the flash datasheets), {@link ACK_FLUSH_MS} and a Wi-Fi round trip.
 */
export const MIN_RESEND_TIMEOUT_MS = 1000;
/** Ceiling of the resend timeout, estimated or doubled (§7). */
export const MAX_ACK_TIMEOUT_MS = 16000;
/** Timeouts in a row without progress before the sender aborts a transfer. */
export const MAX_RETRIES = 8;
/** How long the sender waits for STATUS after the last chunk is acknowledged. */
export const STATUS_TIMEOUT_MS = 30000;
/** A device that hears nothing for this long re-requests with a resume point. */
export const DEVICE_IDLE_TIMEOUT_MS = 10000;
/** A device holding back a coalesced ACK sends it at the latest this long after its chunk. */
export const ACK_FLUSH_MS = 20;
/** Erase unit of ESP32 flash; resume offsets after a reboot are rounded down to it (§9). */
export const FLASH_SECTOR_BYTES = 4096;
/** Largest OFFER `jitterMs` (§4.8): one hour, also the largest jitter a rollout accepts. */
export const MAX_OFFER_JITTER_MS = 60 * 60 * 1000;
/** Fixed part of an OFFER before its three `str8` (§4.8). */
export const OFFER_FIXED_BYTES = 48;
/** Longest device id, sender id or rollout id (the id rule of §2, {@link DEVICE_ID_PATTERN}). */
export const MAX_ID_BYTES = 64;
/** Largest OFFER (211 bytes): the fixed part, then `rolloutId`, `product`, `version` at their bounds. */
export const MAX_OFFER_BYTES = OFFER_FIXED_BYTES + (1 + MAX_ID_BYTES) + (1 + MAX_PRODUCT_BYTES) +
  (1 + MAX_VERSION_BYTES);
/**
 * Default of the sender setting `offersPerSecond` (§6, §7.2): most OFFERs one sender instance
 * publishes per second, across all rollouts, so a wave of 10 000 devices does not stampede the
 * broker.
 */
export const DEFAULT_OFFERS_PER_SECOND = 100;
/** Size of the fixed CHUNK header before the payload. */
export const CHUNK_HEADER_BYTES = 24;
/** Size of an ACK message. */
export const ACK_BYTES = 16;
/** Stop-and-wait mode of the first design: chunk 1024, window 1. */
export const STOP_AND_WAIT = { chunkSize: 1024, window: 1 } as const;
/** Device ids (and sender ids): topic-safe, 1 to 64 characters. */
export const DEVICE_ID_PATTERN = /^[A-Za-z0-9._:-]{1,64}$/;
/**
 * Longest Correlation Data the sender accepts on a REQUEST (MQTT 5 property or body field). The
 * sender echoes it on every MANIFEST and CHUNK, so without a bound 65 000 bytes of it multiplied
 * the sender's output ×16.8; both receivers use 8 bytes. Longer: ERROR `MALFORMED_REQUEST`.
 */
export const MAX_CORRELATION_BYTES = 64;
/**
 * Resends one transfer may make per chunk it has to send, on average, plus one window: beyond
 * this budget it is aborted (`TRANSFER_ABORTED`). Bounds what a device that NACKs after every ACK
 * can make the sender send (without it: unbounded); a link losing 4 chunks in 5 still finishes.
 */
export const MAX_RESENDS_PER_CHUNK = 4;
/**
 * A transfer that has not received a single ACK this long after its MANIFEST is aborted, however
 * many resends its timeout would still allow (~110 s): a client that opens transfers for invented
 * device ids and never acknowledges holds each slot this long at most.
 */
export const FIRST_ACK_TIMEOUT_MS = 15000;
/**
 * REQUESTs one device may send at once before the sender answers `BUSY` (with the `retryAfterMs`
 * until its next one is allowed); it earns one more every {@link REQUEST_REFILL_MS}. A device that
 * floods REQUESTs only delays itself.
 */
export const REQUEST_BURST = 8;
/** One more REQUEST of a device is admitted every this many ms (see {@link REQUEST_BURST}). */
export const REQUEST_REFILL_MS = 1000;
/**
 * ERRORs the sender answers one device with at once (malformed or refused input); beyond them it
 * drops the message without an answer until the device earns another, one per
 * {@link ERROR_REFILL_MS}. Bounds what 50 000 malformed REQUESTs cost: 50 000 ERRORs before.
 */
export const ERROR_BURST = 8;
/** One more ERROR to a device is allowed every this many ms (see {@link ERROR_BURST}). */
export const ERROR_REFILL_MS = 1000;
/**
 * Hex digits of the image's SHA-256 in its shared topic `{p}/img/{sha16}/{streamId}` (§2, §11):
 * 64 bits keep the topics of two images apart in any catalog, and the stream id keeps two
 * streams of one image apart.
 */
export const SHARED_TOPIC_SHA_HEX = 16;
/**
 * Default of the sender setting `shared.gatherMs` (§11.1): how long a new shared stream waits
 * for more devices asking for the same image before its first CHUNK. A rollout wave's REQUESTs
 * arrive spread over the offers' jitter; devices that come later still join the running stream.
 */
export const DEFAULT_SHARED_GATHER_MS = 1000;
/**
 * Default of the sender setting `shared.quorum` (§11.2): chunk `i` goes out on the shared topic
 * once this fraction of the stream's devices has acknowledged chunk `i − window`. The slowest
 * tenth never holds the others back; it is repaired by unicast.
 */
export const DEFAULT_SHARED_QUORUM = 0.9;
/**
 * Times a device may fall behind its shared stream (a resend timeout with shared chunks in
 * flight) before it leaves the stream for good and finishes by unicast (§11.2): a device whose
 * broker ACL hides the image topic costs three resend timeouts, not one per window.
 */
export const MAX_SHARED_LAPSES = 3;
