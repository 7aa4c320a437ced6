// codec_driver.cpp: see codec_driver.h.
#include "codec_driver.h"

#include <cstring>
#include <vector>

#include "fuzz_input.h"
#include "ota_core/codec.h"
#include "ota_core/limits.h"
#include "ota_core/topics.h"

namespace ota_fuzz {
namespace {

using namespace ota_core;

constexpr TopicKind kTopicKinds[] = {TopicKind::REQUEST, TopicKind::DATA,  TopicKind::ACK,
                                     TopicKind::STATUS,  TopicKind::ERROR, TopicKind::OFFER};
constexpr size_t kTopicKindCount = sizeof kTopicKinds / sizeof kTopicKinds[0];
constexpr const char* kPrefix = "ota";
constexpr const char* kDeviceId = "dev-1";

/// True when `view` is empty or lies inside [data, data + size).
bool inside(Bytes view, const uint8_t* data, size_t size) {
  if (view.size == 0) return true;
  return view.data >= data && view.size <= size &&
         static_cast<size_t>(view.data - data) <= size - view.size;
}

/// Encodes the (valid) message `p` again into exactly sized buffers one byte short and half its
/// size: the encoder must return 0, and AddressSanitizer sees any write past the buffer.
bool encodeRefusesShortBuffers(MessageType type, const uint8_t* p, size_t n) {
  for (size_t capacity : {n - 1, n / 2}) {
    std::vector<uint8_t> out(capacity);
    size_t encoded = 1;
    switch (type) {
      case MessageType::REQUEST: {
        Request m;
        decodeRequest(p, n, m);
        encoded = encodeRequest(m, out.data(), capacity);
        break;
      }
      case MessageType::MANIFEST: {
        Manifest m;
        decodeManifest(p, n, m);
        encoded = encodeManifest(m, out.data(), capacity);
        break;
      }
      case MessageType::ERROR: {
        ErrorMessage m;
        decodeError(p, n, m);
        encoded = encodeError(m, out.data(), capacity);
        break;
      }
      case MessageType::CHUNK: {
        Chunk m;
        decodeChunk(p, n, m);
        encoded = encodeChunk(m, out.data(), capacity);
        break;
      }
      case MessageType::ACK: {
        Ack m;
        decodeAck(p, n, m);
        encoded = encodeAck(m, out.data(), capacity);
        break;
      }
      case MessageType::STATUS: {
        Status m;
        decodeStatus(p, n, m);
        encoded = encodeStatus(m, out.data(), capacity);
        break;
      }
      case MessageType::OFFER: {
        Offer m;
        decodeOffer(p, n, m);
        encoded = encodeOffer(m, out.data(), capacity);
        break;
      }
    }
    if (encoded != 0) return false;
  }
  return true;
}

/// Decodes `msg` as `type`; when it decodes, checks views, the transfer id peek and the exact
/// re-encoding. Returns the decode error, or sets `broken`.
DecodeError decodeAs(MessageType type, const std::vector<uint8_t>& msg, const char*& broken) {
  const uint8_t* p = msg.data();
  size_t n = msg.size();
  // One byte more than the message: a re-encoding that is longer shows as a size mismatch.
  std::vector<uint8_t> out(n + 1);
  size_t encoded = 0;
  bool hasTransferId = true;
  uint32_t transferId = 0;
  bool viewsInside = true;
  DecodeError e = DecodeError::NONE;
  switch (type) {
    case MessageType::REQUEST: {
      Request m;
      e = decodeRequest(p, n, m);
      if (e != DecodeError::NONE) return e;
      hasTransferId = false;
      for (Bytes b : {m.deviceId, m.product, m.currentVersion, m.wantedVersion, m.responseTopic,
                      m.correlationData}) {
        viewsInside = viewsInside && inside(b, p, n);
      }
      encoded = encodeRequest(m, out.data(), out.size());
      break;
    }
    case MessageType::MANIFEST: {
      Manifest m;
      e = decodeManifest(p, n, m);
      if (e != DecodeError::NONE) return e;
      transferId = m.transferId;
      for (Bytes b : {m.name, m.product, m.version, m.ackTopic, m.signature}) {
        viewsInside = viewsInside && inside(b, p, n);
      }
      encoded = encodeManifest(m, out.data(), out.size());
      break;
    }
    case MessageType::ERROR: {
      ErrorMessage m;
      e = decodeError(p, n, m);
      if (e != DecodeError::NONE) return e;
      transferId = m.transferId;
      viewsInside = inside(m.message, p, n);
      encoded = encodeError(m, out.data(), out.size());
      break;
    }
    case MessageType::CHUNK: {
      Chunk m;
      e = decodeChunk(p, n, m);
      if (e != DecodeError::NONE) return e;
      transferId = m.transferId;
      viewsInside = inside(m.payload, p, n) && m.payload.size >= 1 &&
                    m.payload.size <= kMaxChunkBytes;
      encoded = encodeChunk(m, out.data(), out.size());
      break;
    }
    case MessageType::ACK: {
      Ack m;
      e = decodeAck(p, n, m);
      if (e != DecodeError::NONE) return e;
      transferId = m.transferId;
      encoded = encodeAck(m, out.data(), out.size());
      break;
    }
    case MessageType::STATUS: {
      Status m;
      e = decodeStatus(p, n, m);
      if (e != DecodeError::NONE) return e;
      transferId = m.transferId;
      viewsInside = inside(m.version, p, n) && inside(m.detail, p, n);
      encoded = encodeStatus(m, out.data(), out.size());
      break;
    }
    case MessageType::OFFER: {
      Offer m;
      e = decodeOffer(p, n, m);
      if (e != DecodeError::NONE) return e;
      hasTransferId = false;  // bytes 4..8 of an OFFER are its jitterMs
      viewsInside = inside(m.rolloutId, p, n) && inside(m.product, p, n) &&
                    inside(m.version, p, n);
      encoded = encodeOffer(m, out.data(), out.size());
      break;
    }
  }
  if (!viewsInside) {
    broken = "a decoded field points outside the message";
  } else if (encoded != n || std::memcmp(out.data(), p, n) != 0) {
    broken = "a decoded message does not encode back to the same bytes";
  } else if (!encodeRefusesShortBuffers(type, p, n)) {
    broken = "an encoder wrote a message into a buffer too small for it";
  } else {
    uint32_t peeked = 0;
    bool found = peekTransferId(p, n, peeked);
    if (found != hasTransferId || (found && peeked != transferId)) {
      broken = "peekTransferId() disagrees with the decoded transfer id";
    }
  }
  return DecodeError::NONE;
}

/// The message read as an MQTT topic name: parse and rebuild must agree.
const char* checkTopic(const std::vector<uint8_t>& msg) {
  Bytes topic{msg.data(), msg.size()};
  TopicKind kind{};
  Bytes sender;
  if (!parseDeviceTopic(topic, kPrefix, kDeviceId, kind, sender)) {
    if (isAckTopicOf(topic, kPrefix, kDeviceId)) return "isAckTopicOf() accepts an unparsed topic";
    return nullptr;
  }
  if (isAckTopicOf(topic, kPrefix, kDeviceId) != (kind == TopicKind::ACK)) {
    return "isAckTopicOf() disagrees with parseDeviceTopic()";
  }
  std::vector<char> senderId(sender.size + 1, '\0');
  if (sender.size != 0) std::memcpy(senderId.data(), sender.data, sender.size);
  char rebuilt[kMaxTopicBytes + 1];
  size_t n = buildDeviceTopic(rebuilt, sizeof rebuilt, kPrefix, kDeviceId, kind,
                              kind == TopicKind::ACK ? senderId.data() : nullptr);
  if (n != msg.size() || std::memcmp(rebuilt, msg.data(), n) != 0) {
    return "a topic parseDeviceTopic() accepts is not rebuilt by buildDeviceTopic()";
  }
  return nullptr;
}

}  // namespace

const char* fuzzCodec(const uint8_t* data, size_t size) {
  FuzzInput in(data, size);
  TopicKind kind = kTopicKinds[in.u8() % kTopicKindCount];
  std::vector<uint8_t> msg = in.rest();
  const uint8_t* p = msg.data();
  size_t n = msg.size();

  MessageType type{};
  DecodeError header = peekType(p, n, type);
  MessageType onType{};
  DecodeError onTopic = peekTypeOn(kind, p, n, onType);
  DecodeError expectedOnTopic =
      header != DecodeError::NONE ? header
      : carries(kind, type)       ? DecodeError::NONE
                                  : DecodeError::UNEXPECTED_TYPE;
  if (onTopic != expectedOnTopic || (onTopic == DecodeError::NONE && onType != type)) {
    return "peekTypeOn() disagrees with peekType() and carries()";
  }

  const char* broken = nullptr;
  for (MessageType t : {MessageType::REQUEST, MessageType::MANIFEST, MessageType::ERROR,
                        MessageType::CHUNK, MessageType::ACK, MessageType::STATUS,
                        MessageType::OFFER}) {
    DecodeError e = decodeAs(t, msg, broken);
    if (broken != nullptr) return broken;
    if (header != DecodeError::NONE && e != header) {
      return "a decoder reports another error than the header check";
    }
    if (header == DecodeError::NONE && t != type && e != DecodeError::UNEXPECTED_TYPE) {
      return "a decoder accepts or misjudges a message of another type";
    }
  }
  // The whole message as a str8 and as an id: the string rules read exactly its bytes.
  bool utf8 = isValidUtf8(Bytes{p, n});
  if (isValidId(Bytes{p, n}) && !utf8) return "an id that isValidId() accepts is not UTF-8";
  return checkTopic(msg);
}

}  // namespace ota_fuzz
