// ota_core/codec.h: decoder and encoder for the seven messages of protocol §4. Decoded strings and
// byte fields are views into the caller's buffer (no copies, no heap); the caller keeps the
// buffer alive while it uses the decoded struct. Every decode check of §4 lives in codec.cpp.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ota_core/limits.h"

namespace ota_core {

/// Why a message failed to decode; names and meanings are exactly those of protocol §4.
/// `NONE` means success.
enum class DecodeError : uint8_t {
  NONE = 0,
  TRUNCATED,
  TRAILING_BYTES,
  BAD_MAGIC,
  UNSUPPORTED_VERSION,
  UNEXPECTED_TYPE,
  RESERVED_NOT_ZERO,
  BAD_STRING,
  OUT_OF_RANGE,
  CHUNK_TOO_LARGE,
  LENGTH_MISMATCH,
};

/// The protocol name of a decode error ("TRUNCATED", ...); "NONE" for success.
const char* toString(DecodeError error);

/// Message type byte of the header (§4).
enum class MessageType : uint8_t {
  REQUEST = 0x01,
  MANIFEST = 0x02,
  ERROR = 0x03,
  CHUNK = 0x04,
  ACK = 0x05,
  STATUS = 0x06,
  OFFER = 0x07,
};

/// ERROR codes of §5.1.
enum class ErrorCode : uint16_t {
  MALFORMED_REQUEST = 1,
  DEVICE_MISMATCH = 2,
  RESPONSE_TOPIC_REFUSED = 3,
  UNKNOWN_IMAGE = 4,
  BUSY = 5,
  TRANSFER_ABORTED = 6,
  UNKNOWN_TRANSFER = 7,
  MALFORMED_ACK = 8,
  OUT_OF_RANGE = 9,
  INTERNAL_ERROR = 10,
  UP_TO_DATE = 11,
};

/// NACK reasons of §5.2 (0 = plain cumulative ACK).
enum class NackReason : uint8_t {
  NONE = 0,
  CRC_MISMATCH = 1,
  FLASH_WRITE_FAILED = 2,
  GAP = 3,
  BAD_CHUNK = 4,
};

/// STATUS codes of §5.3.
enum class StatusCode : uint8_t {
  VERIFIED = 0,
  BOOTED = 1,
  ROLLED_BACK = 2,
  HASH_MISMATCH = 16,
  SIGNATURE_INVALID = 17,
  FLASH_ERROR = 18,
  IMAGE_INVALID = 19,
  ABORTED = 20,
};

/// Protocol names of the codes above, for logs.
const char* toString(ErrorCode code);
const char* toString(NackReason reason);
const char* toString(StatusCode code);

/// MANIFEST `kind` (§4.2).
enum class ImageKind : uint8_t { ESP32_APP = 0, GENERIC_FILE = 1 };

/// A non-owning view of bytes (also used for UTF-8 strings, which are not NUL-terminated).
struct Bytes {
  const uint8_t* data = nullptr;
  size_t size = 0;
};

/// Builds a view of a NUL-terminated C string.
Bytes bytesOf(const char* text);
/// True when `view` holds exactly the bytes of `text`.
bool equals(Bytes view, const char* text);
/// True when both views hold the same bytes.
bool equals(Bytes a, Bytes b);

/// REQUEST `flags` bits (§4.1); bit 2 SHARED is §11's (the device can receive the shared stream).
constexpr uint8_t kRequestFlagResume = 0x01;
constexpr uint8_t kRequestFlagHttp = 0x02;
constexpr uint8_t kRequestFlagShared = 0x04;
/// MANIFEST `flags` bits (§4.2); bit 2 SHARED is §11's (the shared-stream fields follow).
constexpr uint8_t kManifestFlagSigned = 0x01;
constexpr uint8_t kManifestFlagUrl = 0x02;
constexpr uint8_t kManifestFlagShared = 0x04;

/// REQUEST (§4.1). `hasResume` mirrors flag bit 0, `wantsHttp` flag bit 1 (an HTTP download),
/// `shared` flag bit 2 (the shared image stream, §11).
struct Request {
  uint32_t chunkSize = 0;
  uint16_t window = 0;
  Bytes deviceId;
  Bytes product;
  Bytes currentVersion;
  Bytes wantedVersion;
  Bytes responseTopic;
  Bytes correlationData;
  bool hasResume = false;
  uint8_t resumeSha256[kSha256Bytes] = {};
  uint32_t resumeOffset = 0;
  bool wantsHttp = false;
  bool shared = false;
};

/// MANIFEST (§4.2). `signed` (flag bit 0) is implied by a non-empty signature; `hasUrl` mirrors
/// flag bit 1: the image is downloaded from `url` over HTTP instead of in CHUNKs (§7.3).
struct Manifest {
  uint32_t transferId = 0;
  uint8_t sha256[kSha256Bytes] = {};
  uint32_t size = 0;
  uint32_t chunkSize = 0;
  uint32_t chunkCount = 0;
  uint32_t startOffset = 0;
  uint16_t window = 0;
  ImageKind kind = ImageKind::ESP32_APP;
  Bytes name;
  Bytes product;
  Bytes version;
  Bytes ackTopic;
  Bytes signature;
  bool hasUrl = false;
  Bytes url;
  /// Flag bit 2 SHARED: CHUNKs of this image also travel on `sharedTopic`, each with `streamId`
  /// in its transferId field (§11).
  bool shared = false;
  uint32_t streamId = 0;
  Bytes sharedTopic;
};

/// ERROR (§4.3).
struct ErrorMessage {
  ErrorCode code = ErrorCode::INTERNAL_ERROR;
  uint32_t transferId = 0;
  uint32_t retryAfterMs = 0;
  Bytes message;
};

/// CHUNK (§4.4); `payload.size` equals the length field.
struct Chunk {
  uint32_t transferId = 0;
  uint32_t index = 0;
  uint32_t offset = 0;
  uint32_t crc32 = 0;
  Bytes payload;
};

/// ACK (§4.5).
struct Ack {
  uint32_t transferId = 0;
  uint32_t nextIndex = 0;
  NackReason nack = NackReason::NONE;
};

/// STATUS (§4.6).
struct Status {
  uint32_t transferId = 0;
  StatusCode status = StatusCode::VERIFIED;
  uint8_t sha256[kSha256Bytes] = {};
  Bytes version;
  Bytes detail;
};

/// OFFER (§4.8): an update is ready; the device answers with an ordinary REQUEST after a uniformly
/// random delay in [0, jitterMs]. It opens no transfer and carries no image data.
struct Offer {
  uint32_t jitterMs = 0;
  uint8_t sha256[kSha256Bytes] = {};
  uint32_t size = 0;
  ImageKind kind = ImageKind::ESP32_APP;
  Bytes rolloutId;
  Bytes product;
  Bytes version;
};

/// Checks the 4-byte header and reports the message type. Fails with TRUNCATED, BAD_MAGIC,
/// UNSUPPORTED_VERSION or UNEXPECTED_TYPE (unknown type byte).
DecodeError peekType(const uint8_t* data, size_t size, MessageType& type);

/// Reads the `transferId` of a message without decoding the rest: bytes 4..8 of MANIFEST, CHUNK,
/// ACK and STATUS, bytes 8..12 of ERROR (§4). Returns false (and leaves `id` alone) when the
/// header is invalid, the message is too short to hold the field, or it is a REQUEST or an OFFER
/// (no transfer id; bytes 4..8 of an OFFER are its jitterMs). A receiver uses it to tell whether a CHUNK that fails to decode is its own.
bool peekTransferId(const uint8_t* data, size_t size, uint32_t& id);

/// Decoders: fill `out` and return NONE, or return the first rule of §4 the bytes break. A type
/// byte other than the decoder's own is UNEXPECTED_TYPE. Views in `out` point into `data`.
DecodeError decodeRequest(const uint8_t* data, size_t size, Request& out);
DecodeError decodeManifest(const uint8_t* data, size_t size, Manifest& out);
DecodeError decodeError(const uint8_t* data, size_t size, ErrorMessage& out);
DecodeError decodeChunk(const uint8_t* data, size_t size, Chunk& out);
DecodeError decodeAck(const uint8_t* data, size_t size, Ack& out);
DecodeError decodeStatus(const uint8_t* data, size_t size, Status& out);
DecodeError decodeOffer(const uint8_t* data, size_t size, Offer& out);

/// Encoders: write the message into `out` and return its size, or 0 when it does not fit in
/// `capacity` or a field is longer than its wire field can carry (a str8 over 255 bytes). They
/// do not re-check value ranges: encoding is for messages this program builds itself.
size_t encodeRequest(const Request& msg, uint8_t* out, size_t capacity);
size_t encodeManifest(const Manifest& msg, uint8_t* out, size_t capacity);
size_t encodeError(const ErrorMessage& msg, uint8_t* out, size_t capacity);
size_t encodeChunk(const Chunk& msg, uint8_t* out, size_t capacity);
size_t encodeAck(const Ack& msg, uint8_t* out, size_t capacity);
size_t encodeStatus(const Status& msg, uint8_t* out, size_t capacity);
size_t encodeOffer(const Offer& msg, uint8_t* out, size_t capacity);

/// The §2 id rule `[A-Za-z0-9._:-]{1,64}` (device ids and sender ids).
bool isValidId(Bytes id);
/// Well-formed UTF-8 without NUL (the str8 rule of §4).
bool isValidUtf8(Bytes text);

}  // namespace ota_core
