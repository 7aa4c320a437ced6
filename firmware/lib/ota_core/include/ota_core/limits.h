// ota_core/limits.h: every numeric limit of the wire protocol (docs/protocol.md §4 and §6) and
// the receiver's own sizing constants, in one place. Nothing else in the firmware spells these
// numbers; buffers are sized from them so the core needs no heap after start-up.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ota_core {

// ---- protocol §4: encoding ----
/// First two bytes of every message ("OT").
constexpr uint8_t kMagic0 = 0x4F;
constexpr uint8_t kMagic1 = 0x54;
/// The only protocol version this core speaks (§10).
constexpr uint8_t kProtocolVersion = 1;
/// Bytes of the common header: magic, version, type.
constexpr size_t kHeaderBytes = 4;
/// Longest `str8` / `bytes8` (protocol §6 MAX_STR8_BYTES).
constexpr size_t kMaxStr8Bytes = 255;
/// Device id and sender id rule of §2: `[A-Za-z0-9._:-]{1,64}`.
constexpr size_t kMaxDeviceIdBytes = 64;
/// REQUEST `product`: 1..64 bytes (§4.1).
constexpr size_t kMaxProductBytes = 64;
/// REQUEST `currentVersion` / `wantedVersion`: 0..32 bytes (§4.1).
constexpr size_t kMaxVersionBytes = 32;
/// SHA-256 digest size.
constexpr size_t kSha256Bytes = 32;
/// ECDSA P-256 signature `r||s` (§4.2).
constexpr size_t kSignatureBytes = 64;
/// MANIFEST `url` (flag bit 1 URL, a str16): 1..512 bytes (protocol §6 MAX_URL_BYTES).
constexpr size_t kMaxUrlBytes = 512;
/// Fixed part of each message (up to its first variable-length field).
constexpr size_t kRequestFixedBytes = 12;
constexpr size_t kManifestFixedBytes = 60;
constexpr size_t kErrorFixedBytes = 16;
constexpr size_t kChunkHeaderBytes = 24;
constexpr size_t kAckBytes = 16;
constexpr size_t kStatusFixedBytes = 44;
constexpr size_t kOfferFixedBytes = 48;
/// Largest OFFER (211 bytes): fixed part, rolloutId (an id), product and version at their bounds.
constexpr size_t kMaxOfferBytes = kOfferFixedBytes + (1 + kMaxDeviceIdBytes) +
                                  (1 + kMaxProductBytes) + (1 + kMaxVersionBytes);

// ---- protocol §6: limits and timing ----
constexpr uint32_t kMinChunkBytes = 256;
constexpr uint32_t kMaxChunkBytes = 61440;
constexpr uint32_t kDefaultChunkBytes = 4096;
/// Largest CHUNK message: header plus MAX_CHUNK_BYTES (61464).
constexpr size_t kMaxChunkMessageBytes = kChunkHeaderBytes + kMaxChunkBytes;
constexpr uint16_t kMaxWindow = 64;
constexpr uint16_t kDefaultWindow = 64;
/// Resend timeout before the first round-trip sample (§7.1).
constexpr uint32_t kAckTimeoutMs = 2000;
/// Floor of the estimated resend timeout (§7.1): worst 4 KiB sector erase, ACK flush, a round trip.
constexpr uint32_t kMinResendTimeoutMs = 1000;
/// Ceiling of the resend timeout, estimated or doubled (§7.1).
constexpr uint32_t kMaxAckTimeoutMs = 16000;
constexpr uint32_t kMaxRetries = 8;
constexpr uint32_t kStatusTimeoutMs = 30000;
constexpr uint32_t kDeviceIdleTimeoutMs = 10000;
/// Largest OFFER `jitterMs` (§4.8, §6 MAX_OFFER_JITTER_MS): one hour.
constexpr uint32_t kMaxOfferJitterMs = 3600000;

// ---- receiver sizing (not protocol values; chosen here and documented in firmware/README.md) ----
/// Longest MQTT topic the receiver stores (protocol §2.1 caps a Response Topic at 255 bytes).
constexpr size_t kMaxTopicBytes = 255;
/// Correlation Data the receiver generates for its own requests; longer incoming values can never
/// match ours, so the reassembler keeps only this many bytes and a "too long" flag.
constexpr size_t kCorrelationBytes = 8;
/// Longest REQUEST this receiver encodes: fixed part, device id, product, two versions, empty
/// MQTT 3.1.1 topic (or one of kMaxTopicBytes), correlation, resume point.
constexpr size_t kMaxRequestBytes = kRequestFixedBytes + (1 + kMaxDeviceIdBytes) +
                                    (1 + kMaxProductBytes) + 2 * (1 + kMaxVersionBytes) +
                                    (1 + kMaxTopicBytes) + (1 + kCorrelationBytes) +
                                    kSha256Bytes + 4;
/// Longest STATUS this receiver encodes (version + a short detail).
constexpr size_t kMaxStatusDetailBytes = 63;
constexpr size_t kMaxStatusBytes =
    kStatusFixedBytes + (1 + kMaxVersionBytes) + (1 + kMaxStatusDetailBytes);
/// Flash erase sector. A resume point is requested rounded down to it so that the first write
/// after a power cut starts a freshly erased sector (bytes written after the last saved point may
/// be half-programmed).
constexpr uint32_t kFlashSectorBytes = 4096;
/// Flash write failures in a row before STATUS FLASH_ERROR (protocol §8).
constexpr uint32_t kMaxFlashFailuresInARow = 3;
/// Block size for rehashing the already written part of an image on resume.
constexpr size_t kRehashBlockBytes = 512;
/// Protocol ACK_FLUSH_MS: a held-back acknowledgement (fewer than ceil(window/2) chunks, or a
/// duplicate) goes out at the latest this long after the oldest chunk it acknowledges arrived; a
/// sender that keeps fewer than ceil(window/2) in flight (§7 allows it) would otherwise wait for
/// its resend timeout.
constexpr uint32_t kAckFlushDelayMs = 20;
/// REQUESTs in a row without any answer (MANIFEST, ERROR or CHUNK) before the receiver gives up
/// and reports that no sender answered (protocol §8): 3 x DEVICE_IDLE_TIMEOUT_MS = 30 s. The
/// simulator uses the same number (src/sim/limits.ts MAX_UNANSWERED_REQUESTS).
constexpr uint32_t kMaxUnansweredRequests = 3;
/// A device whose attempt failed takes a later OFFER (protocol §8.7) no sooner than this long after
/// the failure: the delay it draws is stretched to reach it, so a failure that repeats at once (a
/// broken flash, an image it cannot take) never turns a rollout's retries into a burst of REQUESTs.
/// The simulator uses the same number (src/sim/limits.ts RETRY_AFTER_FAILURE_MS).
constexpr uint32_t kRetryAfterFailureMs = kDeviceIdleTimeoutMs;

}  // namespace ota_core
