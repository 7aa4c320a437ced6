// codec.cpp: the byte layouts of protocol §4. A Reader walks the input and remembers the first
// failure (TRUNCATED), so each decoder reads like the protocol's byte table. The checks then run
// in the order of protocol §4.7: header, framing, reserved bits, strings, value ranges.
#include "ota_core/codec.h"

#include <cstring>
#include <initializer_list>

namespace ota_core {
namespace {

/// Sequential little-endian reader over a message; a read past the end sets `truncated`.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  uint8_t u8() {
    if (!need(1)) return 0;
    return data_[pos_++];
  }
  uint16_t u16() {
    if (!need(2)) return 0;
    uint16_t v = static_cast<uint16_t>(data_[pos_] | (data_[pos_ + 1] << 8));
    pos_ += 2;
    return v;
  }
  uint32_t u32() {
    if (!need(4)) return 0;
    uint32_t v = static_cast<uint32_t>(data_[pos_]) | (static_cast<uint32_t>(data_[pos_ + 1]) << 8) |
                 (static_cast<uint32_t>(data_[pos_ + 2]) << 16) |
                 (static_cast<uint32_t>(data_[pos_ + 3]) << 24);
    pos_ += 4;
    return v;
  }
  Bytes raw(size_t n) {
    Bytes b;
    if (!need(n)) return b;
    b.data = data_ + pos_;
    b.size = n;
    pos_ += n;
    return b;
  }
  /// str8 / bytes8: a u8 length then that many bytes.
  Bytes var8() { return raw(u8()); }
  /// str16: a u16 length then that many bytes.
  Bytes var16() { return raw(u16()); }
  void copy(uint8_t* out, size_t n) {
    Bytes b = raw(n);
    if (b.data != nullptr) std::memcpy(out, b.data, n);
  }
  bool truncated() const { return truncated_; }
  size_t remaining() const { return truncated_ ? 0 : size_ - pos_; }

 private:
  bool need(size_t n) {
    if (truncated_ || size_ - pos_ < n) {
      truncated_ = true;
      return false;
    }
    return true;
  }
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  bool truncated_ = false;
};

/// Sequential little-endian writer; a write past `capacity` sets `overflow`.
class Writer {
 public:
  Writer(uint8_t* out, size_t capacity) : out_(out), cap_(capacity) {}
  void u8(uint8_t v) {
    if (need(1)) out_[pos_++] = v;
  }
  void u16(uint16_t v) {
    u8(static_cast<uint8_t>(v));
    u8(static_cast<uint8_t>(v >> 8));
  }
  void u32(uint32_t v) {
    for (int i = 0; i < 4; ++i) u8(static_cast<uint8_t>(v >> (8 * i)));
  }
  void raw(const uint8_t* p, size_t n) {
    if (n == 0) return;
    if (p == nullptr || !need(n)) {
      overflow_ = true;
      return;
    }
    std::memcpy(out_ + pos_, p, n);
    pos_ += n;
  }
  void var8(Bytes b) {
    if (b.size > kMaxStr8Bytes) {
      overflow_ = true;
      return;
    }
    u8(static_cast<uint8_t>(b.size));
    raw(b.data, b.size);
  }
  void var16(Bytes b) {
    if (b.size > 0xFFFF) {
      overflow_ = true;
      return;
    }
    u16(static_cast<uint16_t>(b.size));
    raw(b.data, b.size);
  }
  void header(MessageType type) {
    u8(kMagic0);
    u8(kMagic1);
    u8(kProtocolVersion);
    u8(static_cast<uint8_t>(type));
  }
  size_t result() const { return overflow_ ? 0 : pos_; }

 private:
  bool need(size_t n) {
    if (overflow_ || cap_ - pos_ < n) {
      overflow_ = true;
      return false;
    }
    return true;
  }
  uint8_t* out_;
  size_t cap_;
  size_t pos_ = 0;
  bool overflow_ = false;
};

DecodeError expectHeader(const uint8_t* data, size_t size, MessageType expected) {
  MessageType type{};
  DecodeError e = peekType(data, size, type);
  if (e != DecodeError::NONE) return e;
  return type == expected ? DecodeError::NONE : DecodeError::UNEXPECTED_TYPE;
}

/// The end-of-message rule shared by every decoder: TRUNCATED before TRAILING_BYTES.
DecodeError finish(const Reader& r) {
  if (r.truncated()) return DecodeError::TRUNCATED;
  if (r.remaining() != 0) return DecodeError::TRAILING_BYTES;
  return DecodeError::NONE;
}

bool isKnownStatus(uint8_t s) {
  return s <= static_cast<uint8_t>(StatusCode::ROLLED_BACK) ||
         (s >= static_cast<uint8_t>(StatusCode::HASH_MISMATCH) &&
          s <= static_cast<uint8_t>(StatusCode::ABORTED));
}

/// The str8 length bounds of §4, in bytes (UTF-8 bytes for text, never characters).
bool sizeIn(Bytes b, size_t min, size_t max) { return b.size >= min && b.size <= max; }

uint32_t ceilDiv(uint32_t a, uint32_t b) { return a / b + (a % b != 0 ? 1 : 0); }

}  // namespace

const char* toString(DecodeError error) {
  switch (error) {
    case DecodeError::NONE: return "NONE";
    case DecodeError::TRUNCATED: return "TRUNCATED";
    case DecodeError::TRAILING_BYTES: return "TRAILING_BYTES";
    case DecodeError::BAD_MAGIC: return "BAD_MAGIC";
    case DecodeError::UNSUPPORTED_VERSION: return "UNSUPPORTED_VERSION";
    case DecodeError::UNEXPECTED_TYPE: return "UNEXPECTED_TYPE";
    case DecodeError::RESERVED_NOT_ZERO: return "RESERVED_NOT_ZERO";
    case DecodeError::BAD_STRING: return "BAD_STRING";
    case DecodeError::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case DecodeError::CHUNK_TOO_LARGE: return "CHUNK_TOO_LARGE";
    case DecodeError::LENGTH_MISMATCH: return "LENGTH_MISMATCH";
  }
  return "UNKNOWN";
}

const char* toString(ErrorCode code) {
  switch (code) {
    case ErrorCode::MALFORMED_REQUEST: return "MALFORMED_REQUEST";
    case ErrorCode::DEVICE_MISMATCH: return "DEVICE_MISMATCH";
    case ErrorCode::RESPONSE_TOPIC_REFUSED: return "RESPONSE_TOPIC_REFUSED";
    case ErrorCode::UNKNOWN_IMAGE: return "UNKNOWN_IMAGE";
    case ErrorCode::BUSY: return "BUSY";
    case ErrorCode::TRANSFER_ABORTED: return "TRANSFER_ABORTED";
    case ErrorCode::UNKNOWN_TRANSFER: return "UNKNOWN_TRANSFER";
    case ErrorCode::MALFORMED_ACK: return "MALFORMED_ACK";
    case ErrorCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case ErrorCode::INTERNAL_ERROR: return "INTERNAL_ERROR";
    case ErrorCode::UP_TO_DATE: return "UP_TO_DATE";
  }
  return "UNKNOWN";
}

const char* toString(NackReason reason) {
  switch (reason) {
    case NackReason::NONE: return "NONE";
    case NackReason::CRC_MISMATCH: return "CRC_MISMATCH";
    case NackReason::FLASH_WRITE_FAILED: return "FLASH_WRITE_FAILED";
    case NackReason::GAP: return "GAP";
    case NackReason::BAD_CHUNK: return "BAD_CHUNK";
  }
  return "UNKNOWN";
}

const char* toString(StatusCode code) {
  switch (code) {
    case StatusCode::VERIFIED: return "VERIFIED";
    case StatusCode::BOOTED: return "BOOTED";
    case StatusCode::ROLLED_BACK: return "ROLLED_BACK";
    case StatusCode::HASH_MISMATCH: return "HASH_MISMATCH";
    case StatusCode::SIGNATURE_INVALID: return "SIGNATURE_INVALID";
    case StatusCode::FLASH_ERROR: return "FLASH_ERROR";
    case StatusCode::IMAGE_INVALID: return "IMAGE_INVALID";
    case StatusCode::ABORTED: return "ABORTED";
  }
  return "UNKNOWN";
}

Bytes bytesOf(const char* text) {
  Bytes b;
  b.data = reinterpret_cast<const uint8_t*>(text);
  b.size = text != nullptr ? std::strlen(text) : 0;
  return b;
}

bool equals(Bytes a, Bytes b) {
  return a.size == b.size && (a.size == 0 || std::memcmp(a.data, b.data, a.size) == 0);
}

bool equals(Bytes view, const char* text) { return equals(view, bytesOf(text)); }

bool isValidId(Bytes id) {
  if (id.size < 1 || id.size > kMaxDeviceIdBytes) return false;
  for (size_t i = 0; i < id.size; ++i) {
    uint8_t c = id.data[i];
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '-';
    if (!ok) return false;
  }
  return true;
}

bool isValidUtf8(Bytes text) {
  const uint8_t* p = text.data;
  size_t i = 0;
  while (i < text.size) {
    uint8_t c = p[i];
    if (c == 0) return false;
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t n;
    uint32_t cp;
    uint32_t min;
    if ((c & 0xE0) == 0xC0) {
      n = 1, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3, cp = c & 0x07, min = 0x10000;
    } else {
      return false;
    }
    if (text.size - i <= n) return false;
    for (size_t k = 1; k <= n; ++k) {
      uint8_t cc = p[i + k];
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, UTF-16 surrogates and code points above U+10FFFF are not UTF-8.
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
  }
  return true;
}

DecodeError peekType(const uint8_t* data, size_t size, MessageType& type) {
  if (size < kHeaderBytes) return DecodeError::TRUNCATED;
  if (data[0] != kMagic0 || data[1] != kMagic1) return DecodeError::BAD_MAGIC;
  if (data[2] != kProtocolVersion) return DecodeError::UNSUPPORTED_VERSION;
  if (data[3] < static_cast<uint8_t>(MessageType::REQUEST) ||
      data[3] > static_cast<uint8_t>(MessageType::OFFER)) {
    return DecodeError::UNEXPECTED_TYPE;
  }
  type = static_cast<MessageType>(data[3]);
  return DecodeError::NONE;
}

bool peekTransferId(const uint8_t* data, size_t size, uint32_t& id) {
  MessageType type{};
  if (peekType(data, size, type) != DecodeError::NONE || type == MessageType::REQUEST ||
      type == MessageType::OFFER) {
    return false;
  }
  size_t at = type == MessageType::ERROR ? 8 : 4;
  if (size < at + 4) return false;
  Reader r(data + at, 4);
  id = r.u32();
  return true;
}

DecodeError decodeRequest(const uint8_t* data, size_t size, Request& out) {
  DecodeError e = expectHeader(data, size, MessageType::REQUEST);
  if (e != DecodeError::NONE) return e;
  Reader r(data + kHeaderBytes, size - kHeaderBytes);
  out = Request{};
  out.chunkSize = r.u32();
  out.window = r.u16();
  uint8_t flags = r.u8();
  uint8_t reserved = r.u8();
  out.deviceId = r.var8();
  out.product = r.var8();
  out.currentVersion = r.var8();
  out.wantedVersion = r.var8();
  out.responseTopic = r.var8();
  out.correlationData = r.var8();
  // Bit 0 alone decides the framing; bits 1 (HTTP) and 2 (SHARED) add no field; 3-7 are reserved.
  out.hasResume = (flags & kRequestFlagResume) != 0;
  out.wantsHttp = (flags & kRequestFlagHttp) != 0;
  out.shared = (flags & kRequestFlagShared) != 0;
  if (out.hasResume) {
    r.copy(out.resumeSha256, kSha256Bytes);
    out.resumeOffset = r.u32();
  }
  e = finish(r);
  if (e != DecodeError::NONE) return e;
  if ((flags & 0xF8) != 0 || reserved != 0) return DecodeError::RESERVED_NOT_ZERO;
  for (Bytes s : {out.deviceId, out.product, out.currentVersion, out.wantedVersion,
                  out.responseTopic}) {
    if (!isValidUtf8(s)) return DecodeError::BAD_STRING;
  }
  if (!isValidId(out.deviceId) || !sizeIn(out.product, 1, kMaxProductBytes) ||
      !sizeIn(out.currentVersion, 0, kMaxVersionBytes) ||
      !sizeIn(out.wantedVersion, 0, kMaxVersionBytes)) {
    return DecodeError::OUT_OF_RANGE;
  }
  return DecodeError::NONE;
}

DecodeError decodeManifest(const uint8_t* data, size_t size, Manifest& out) {
  DecodeError e = expectHeader(data, size, MessageType::MANIFEST);
  if (e != DecodeError::NONE) return e;
  Reader r(data + kHeaderBytes, size - kHeaderBytes);
  out = Manifest{};
  out.transferId = r.u32();
  r.copy(out.sha256, kSha256Bytes);
  out.size = r.u32();
  out.chunkSize = r.u32();
  out.chunkCount = r.u32();
  out.startOffset = r.u32();
  out.window = r.u16();
  uint8_t kind = r.u8();
  uint8_t flags = r.u8();
  out.name = r.var8();
  out.product = r.var8();
  out.version = r.var8();
  out.ackTopic = r.var8();
  out.signature = r.var8();
  // Bit 1 (URL) decides whether the url follows the signature, bit 2 (SHARED) whether the
  // shared-stream fields follow that (framing, §4.2, §4.7).
  out.hasUrl = (flags & kManifestFlagUrl) != 0;
  if (out.hasUrl) out.url = r.var16();
  out.shared = (flags & kManifestFlagShared) != 0;
  if (out.shared) {
    out.streamId = r.u32();
    out.sharedTopic = r.var8();
  }
  e = finish(r);
  if (e != DecodeError::NONE) return e;
  if ((flags & 0xF8) != 0) return DecodeError::RESERVED_NOT_ZERO;
  for (Bytes s : {out.name, out.product, out.version, out.ackTopic, out.url, out.sharedTopic}) {
    if (!isValidUtf8(s)) return DecodeError::BAD_STRING;
  }
  if (out.hasUrl && !sizeIn(out.url, 1, kMaxUrlBytes)) return DecodeError::OUT_OF_RANGE;
  bool isSigned = (flags & kManifestFlagSigned) != 0;
  if (out.transferId == 0 || out.size < 1 || out.chunkSize < kMinChunkBytes ||
      out.chunkSize > kMaxChunkBytes || out.chunkCount != ceilDiv(out.size, out.chunkSize) ||
      out.startOffset % out.chunkSize != 0 || out.startOffset >= out.size || out.window < 1 ||
      out.window > kMaxWindow || kind > static_cast<uint8_t>(ImageKind::GENERIC_FILE) ||
      !sizeIn(out.name, 1, kMaxStr8Bytes) || !sizeIn(out.product, 1, kMaxProductBytes) ||
      !sizeIn(out.version, 1, kMaxVersionBytes)) {
    return DecodeError::OUT_OF_RANGE;
  }
  // SIGNED <=> a signature is present, and a present signature is r||s of P-256 (64 bytes).
  if (isSigned != (out.signature.size != 0) ||
      (isSigned && out.signature.size != kSignatureBytes)) {
    return DecodeError::OUT_OF_RANGE;
  }
  if (out.shared && (out.streamId == 0 || out.sharedTopic.size == 0)) {
    return DecodeError::OUT_OF_RANGE;
  }
  out.kind = static_cast<ImageKind>(kind);
  return DecodeError::NONE;
}

DecodeError decodeError(const uint8_t* data, size_t size, ErrorMessage& out) {
  DecodeError e = expectHeader(data, size, MessageType::ERROR);
  if (e != DecodeError::NONE) return e;
  Reader r(data + kHeaderBytes, size - kHeaderBytes);
  out = ErrorMessage{};
  uint16_t code = r.u16();
  uint16_t reserved = r.u16();
  out.transferId = r.u32();
  out.retryAfterMs = r.u32();
  out.message = r.var8();
  e = finish(r);
  if (e != DecodeError::NONE) return e;
  if (reserved != 0) return DecodeError::RESERVED_NOT_ZERO;
  if (!isValidUtf8(out.message)) return DecodeError::BAD_STRING;
  if (code < static_cast<uint16_t>(ErrorCode::MALFORMED_REQUEST) ||
      code > static_cast<uint16_t>(ErrorCode::UP_TO_DATE)) {
    return DecodeError::OUT_OF_RANGE;
  }
  out.code = static_cast<ErrorCode>(code);
  return DecodeError::NONE;
}

DecodeError decodeChunk(const uint8_t* data, size_t size, Chunk& out) {
  DecodeError e = expectHeader(data, size, MessageType::CHUNK);
  if (e != DecodeError::NONE) return e;
  Reader r(data + kHeaderBytes, size - kHeaderBytes);
  out = Chunk{};
  out.transferId = r.u32();
  out.index = r.u32();
  out.offset = r.u32();
  uint32_t length = r.u32();
  out.crc32 = r.u32();
  if (r.truncated()) return DecodeError::TRUNCATED;
  // The payload is the rest of the message; its size is checked against the length field.
  size_t payloadSize = r.remaining();
  if (length > kMaxChunkBytes || payloadSize > kMaxChunkBytes) return DecodeError::CHUNK_TOO_LARGE;
  if (length != payloadSize) return DecodeError::LENGTH_MISMATCH;
  if (length == 0) return DecodeError::OUT_OF_RANGE;
  out.payload = r.raw(payloadSize);
  return DecodeError::NONE;
}

DecodeError decodeAck(const uint8_t* data, size_t size, Ack& out) {
  DecodeError e = expectHeader(data, size, MessageType::ACK);
  if (e != DecodeError::NONE) return e;
  Reader r(data + kHeaderBytes, size - kHeaderBytes);
  out = Ack{};
  out.transferId = r.u32();
  out.nextIndex = r.u32();
  uint8_t nack = r.u8();
  uint8_t reserved[3] = {r.u8(), r.u8(), r.u8()};
  e = finish(r);
  if (e != DecodeError::NONE) return e;
  if (reserved[0] != 0 || reserved[1] != 0 || reserved[2] != 0) {
    return DecodeError::RESERVED_NOT_ZERO;
  }
  if (nack > static_cast<uint8_t>(NackReason::BAD_CHUNK)) return DecodeError::OUT_OF_RANGE;
  out.nack = static_cast<NackReason>(nack);
  return DecodeError::NONE;
}

DecodeError decodeStatus(const uint8_t* data, size_t size, Status& out) {
  DecodeError e = expectHeader(data, size, MessageType::STATUS);
  if (e != DecodeError::NONE) return e;
  Reader r(data + kHeaderBytes, size - kHeaderBytes);
  out = Status{};
  out.transferId = r.u32();
  uint8_t status = r.u8();
  uint8_t reserved[3] = {r.u8(), r.u8(), r.u8()};
  r.copy(out.sha256, kSha256Bytes);
  out.version = r.var8();
  out.detail = r.var8();
  e = finish(r);
  if (e != DecodeError::NONE) return e;
  if (reserved[0] != 0 || reserved[1] != 0 || reserved[2] != 0) {
    return DecodeError::RESERVED_NOT_ZERO;
  }
  if (!isValidUtf8(out.version) || !isValidUtf8(out.detail)) return DecodeError::BAD_STRING;
  if (!isKnownStatus(status) || !sizeIn(out.version, 0, kMaxVersionBytes)) {
    return DecodeError::OUT_OF_RANGE;
  }
  out.status = static_cast<StatusCode>(status);
  return DecodeError::NONE;
}

DecodeError decodeOffer(const uint8_t* data, size_t size, Offer& out) {
  DecodeError e = expectHeader(data, size, MessageType::OFFER);
  if (e != DecodeError::NONE) return e;
  Reader r(data + kHeaderBytes, size - kHeaderBytes);
  out = Offer{};
  out.jitterMs = r.u32();
  r.copy(out.sha256, kSha256Bytes);
  out.size = r.u32();
  uint8_t kind = r.u8();
  uint8_t reserved[3] = {r.u8(), r.u8(), r.u8()};
  out.rolloutId = r.var8();
  out.product = r.var8();
  out.version = r.var8();
  e = finish(r);
  if (e != DecodeError::NONE) return e;
  if (reserved[0] != 0 || reserved[1] != 0 || reserved[2] != 0) {
    return DecodeError::RESERVED_NOT_ZERO;
  }
  for (Bytes s : {out.rolloutId, out.product, out.version}) {
    if (!isValidUtf8(s)) return DecodeError::BAD_STRING;
  }
  if (out.jitterMs > kMaxOfferJitterMs || out.size < 1 ||
      kind > static_cast<uint8_t>(ImageKind::GENERIC_FILE) || !isValidId(out.rolloutId) ||
      !sizeIn(out.product, 1, kMaxProductBytes) || !sizeIn(out.version, 1, kMaxVersionBytes)) {
    return DecodeError::OUT_OF_RANGE;
  }
  out.kind = static_cast<ImageKind>(kind);
  return DecodeError::NONE;
}

size_t encodeRequest(const Request& msg, uint8_t* out, size_t capacity) {
  Writer w(out, capacity);
  w.header(MessageType::REQUEST);
  w.u32(msg.chunkSize);
  w.u16(msg.window);
  w.u8(static_cast<uint8_t>((msg.hasResume ? kRequestFlagResume : 0) |
                             (msg.wantsHttp ? kRequestFlagHttp : 0) |
                             (msg.shared ? kRequestFlagShared : 0)));
  w.u8(0);
  w.var8(msg.deviceId);
  w.var8(msg.product);
  w.var8(msg.currentVersion);
  w.var8(msg.wantedVersion);
  w.var8(msg.responseTopic);
  w.var8(msg.correlationData);
  if (msg.hasResume) {
    w.raw(msg.resumeSha256, kSha256Bytes);
    w.u32(msg.resumeOffset);
  }
  return w.result();
}

size_t encodeManifest(const Manifest& msg, uint8_t* out, size_t capacity) {
  Writer w(out, capacity);
  w.header(MessageType::MANIFEST);
  w.u32(msg.transferId);
  w.raw(msg.sha256, kSha256Bytes);
  w.u32(msg.size);
  w.u32(msg.chunkSize);
  w.u32(msg.chunkCount);
  w.u32(msg.startOffset);
  w.u16(msg.window);
  w.u8(static_cast<uint8_t>(msg.kind));
  w.u8(static_cast<uint8_t>((msg.signature.size != 0 ? kManifestFlagSigned : 0) |
                             (msg.hasUrl ? kManifestFlagUrl : 0) |
                             (msg.shared ? kManifestFlagShared : 0)));
  w.var8(msg.name);
  w.var8(msg.product);
  w.var8(msg.version);
  w.var8(msg.ackTopic);
  w.var8(msg.signature);
  if (msg.hasUrl) w.var16(msg.url);
  if (msg.shared) {
    w.u32(msg.streamId);
    w.var8(msg.sharedTopic);
  }
  return w.result();
}

size_t encodeError(const ErrorMessage& msg, uint8_t* out, size_t capacity) {
  Writer w(out, capacity);
  w.header(MessageType::ERROR);
  w.u16(static_cast<uint16_t>(msg.code));
  w.u16(0);
  w.u32(msg.transferId);
  w.u32(msg.retryAfterMs);
  w.var8(msg.message);
  return w.result();
}

size_t encodeChunk(const Chunk& msg, uint8_t* out, size_t capacity) {
  Writer w(out, capacity);
  w.header(MessageType::CHUNK);
  w.u32(msg.transferId);
  w.u32(msg.index);
  w.u32(msg.offset);
  w.u32(static_cast<uint32_t>(msg.payload.size));
  w.u32(msg.crc32);
  w.raw(msg.payload.data, msg.payload.size);
  return w.result();
}

size_t encodeAck(const Ack& msg, uint8_t* out, size_t capacity) {
  Writer w(out, capacity);
  w.header(MessageType::ACK);
  w.u32(msg.transferId);
  w.u32(msg.nextIndex);
  w.u8(static_cast<uint8_t>(msg.nack));
  w.u8(0);
  w.u8(0);
  w.u8(0);
  return w.result();
}

size_t encodeStatus(const Status& msg, uint8_t* out, size_t capacity) {
  Writer w(out, capacity);
  w.header(MessageType::STATUS);
  w.u32(msg.transferId);
  w.u8(static_cast<uint8_t>(msg.status));
  w.u8(0);
  w.u8(0);
  w.u8(0);
  w.raw(msg.sha256, kSha256Bytes);
  w.var8(msg.version);
  w.var8(msg.detail);
  return w.result();
}

size_t encodeOffer(const Offer& msg, uint8_t* out, size_t capacity) {
  Writer w(out, capacity);
  w.header(MessageType::OFFER);
  w.u32(msg.jitterMs);
  w.raw(msg.sha256, kSha256Bytes);
  w.u32(msg.size);
  w.u8(static_cast<uint8_t>(msg.kind));
  w.u8(0);
  w.u8(0);
  w.u8(0);
  w.var8(msg.rolloutId);
  w.var8(msg.product);
  w.var8(msg.version);
  return w.result();
}

}  // namespace ota_core
