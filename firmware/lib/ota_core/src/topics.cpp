// topics.cpp: protocol §2 topic names. Every `{p}/dev/{id}/...` string of the firmware is built
// or parsed here.
#include "ota_core/topics.h"

#include <cstdio>
#include <cstring>
#include <initializer_list>

namespace ota_core {
namespace {

constexpr char kDevSegment[] = "/dev/";

/// Consumes `text` from the front of `rest` when it is there.
bool take(Bytes& rest, const char* text) {
  size_t n = std::strlen(text);
  if (rest.size < n || std::memcmp(rest.data, text, n) != 0) return false;
  rest.data += n;
  rest.size -= n;
  return true;
}

}  // namespace

const char* toString(TopicKind kind) {
  switch (kind) {
    case TopicKind::REQUEST: return "req";
    case TopicKind::DATA: return "data";
    case TopicKind::ACK: return "ack";
    case TopicKind::STATUS: return "status";
    case TopicKind::ERROR: return "error";
    case TopicKind::OFFER: return "offer";
    case TopicKind::IMAGE: return "img";
  }
  return "unknown";
}

bool carries(TopicKind kind, MessageType type) {
  switch (kind) {
    case TopicKind::REQUEST: return type == MessageType::REQUEST;
    case TopicKind::DATA:
      return type == MessageType::MANIFEST || type == MessageType::CHUNK ||
             type == MessageType::ERROR;
    case TopicKind::ACK: return type == MessageType::ACK || type == MessageType::STATUS;
    case TopicKind::STATUS: return type == MessageType::STATUS;
    case TopicKind::ERROR: return type == MessageType::ERROR;
    case TopicKind::OFFER: return type == MessageType::OFFER;
    case TopicKind::IMAGE: return type == MessageType::CHUNK;
  }
  return false;
}

DecodeError peekTypeOn(TopicKind kind, const uint8_t* data, size_t size, MessageType& type) {
  MessageType t{};
  DecodeError e = peekType(data, size, t);
  if (e != DecodeError::NONE) return e;
  if (!carries(kind, t)) return DecodeError::UNEXPECTED_TYPE;
  type = t;
  return DecodeError::NONE;
}

bool isValidPrefix(const char* prefix) {
  if (prefix == nullptr) return false;
  size_t n = std::strlen(prefix);
  if (n == 0 || prefix[0] == '/' || prefix[n - 1] == '/' || prefix[0] == '$') return false;
  return std::strpbrk(prefix, "+#") == nullptr;
}

size_t buildDeviceTopic(char* out, size_t capacity, const char* prefix, const char* deviceId,
                        TopicKind kind, const char* senderId) {
  if (out == nullptr || capacity == 0) return 0;
  out[0] = '\0';
  if (!isValidPrefix(prefix) || deviceId == nullptr || !isValidId(bytesOf(deviceId))) return 0;
  if (kind == TopicKind::ACK && (senderId == nullptr || !isValidId(bytesOf(senderId)))) return 0;
  int n = kind == TopicKind::ACK
              ? std::snprintf(out, capacity, "%s%s%s/ack/%s", prefix, kDevSegment, deviceId,
                              senderId)
              : std::snprintf(out, capacity, "%s%s%s/%s", prefix, kDevSegment, deviceId,
                              toString(kind));
  if (n < 0 || static_cast<size_t>(n) >= capacity) {
    out[0] = '\0';
    return 0;
  }
  return static_cast<size_t>(n);
}

size_t buildSharedImageTopic(char* out, size_t capacity, const char* prefix,
                             const uint8_t sha256[kSha256Bytes], uint32_t streamId) {
  if (out == nullptr || capacity == 0) return 0;
  out[0] = '\0';
  if (!isValidPrefix(prefix) || sha256 == nullptr) return 0;
  char sha16[kSharedTopicShaHex + 1];
  for (size_t i = 0; i < kSharedTopicShaHex / 2; ++i) {
    std::snprintf(sha16 + 2 * i, 3, "%02x", static_cast<unsigned>(sha256[i]));
  }
  int n = std::snprintf(out, capacity, "%s/img/%s/%lu", prefix, sha16,
                        static_cast<unsigned long>(streamId));
  if (n < 0 || static_cast<size_t>(n) >= capacity) {
    out[0] = '\0';
    return 0;
  }
  return static_cast<size_t>(n);
}

bool parseDeviceTopic(Bytes topic, const char* prefix, const char* deviceId, TopicKind& kind,
                      Bytes& senderId) {
  Bytes rest = topic;
  if (topic.data == nullptr || !take(rest, prefix) || !take(rest, kDevSegment) ||
      !take(rest, deviceId) || !take(rest, "/")) {
    return false;
  }
  for (TopicKind k : {TopicKind::REQUEST, TopicKind::DATA, TopicKind::STATUS, TopicKind::ERROR,
                      TopicKind::OFFER}) {
    if (equals(rest, toString(k))) {
      kind = k;
      senderId = Bytes{};
      return true;
    }
  }
  if (take(rest, "ack/") && isValidId(rest)) {
    kind = TopicKind::ACK;
    senderId = rest;
    return true;
  }
  return false;
}

bool isAckTopicOf(Bytes topic, const char* prefix, const char* deviceId) {
  TopicKind kind{};
  Bytes sender;
  return parseDeviceTopic(topic, prefix, deviceId, kind, sender) && kind == TopicKind::ACK;
}

}  // namespace ota_core
