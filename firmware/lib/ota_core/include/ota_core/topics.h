// ota_core/topics.h: the topic names of protocol §2, built and parsed in one place. The receiver
// core and the platform glue (ESP-IDF and host) call these instead of formatting
// `{p}/dev/{id}/...` themselves. No heap: builders write into a caller's buffer.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ota_core/codec.h"

namespace ota_core {

/// The six topics of a device's namespace (protocol §2) and the messages each carries:
/// REQUEST on `req`; MANIFEST, CHUNK, ERROR on `data`; ACK, STATUS on `ack/{senderId}`;
/// STATUS on `status`; ERROR on `error`; OFFER on `offer` (the device subscribes to it). IMAGE is
/// the shared image topic `{p}/img/{sha16}/{streamId}` outside every namespace: CHUNK only (§11).
enum class TopicKind : uint8_t { REQUEST, DATA, ACK, STATUS, ERROR, OFFER, IMAGE };

/// True when protocol §2 lets a message of `type` travel on a topic of `kind`.
bool carries(TopicKind kind, MessageType type);

/// peekType() plus the topic rule of §4: a message whose type `kind` does not carry fails with
/// UNEXPECTED_TYPE, like an unknown type byte.
DecodeError peekTypeOn(TopicKind kind, const uint8_t* data, size_t size, MessageType& type);

/// The leaf name of a topic kind ("req", "data", "ack", "status", "error", "offer").
const char* toString(TopicKind kind);

/// The §2 prefix rule: not empty, no `+`, `#` or NUL, does not start or end with `/`, does not
/// start with `$`.
bool isValidPrefix(const char* prefix);

/// Writes `{prefix}/dev/{deviceId}/{leaf}` (for ACK: `.../ack/{senderId}`) NUL-terminated into
/// `out`. Returns the topic length, or 0 when it does not fit in `capacity` (NUL included), the
/// prefix or an id breaks the §2 rules, or `senderId` is missing for ACK.
size_t buildDeviceTopic(char* out, size_t capacity, const char* prefix, const char* deviceId,
                        TopicKind kind, const char* senderId = nullptr);

/// Hex digits of the image's SHA-256 in its shared topic (protocol §2, §11).
constexpr size_t kSharedTopicShaHex = 16;

/// Writes the shared image topic `{prefix}/img/{sha16}/{streamId}` (§11: the first 16 lower-case
/// hex digits of `sha256`, the stream id in decimal) NUL-terminated into `out`. Returns its length,
/// or 0 when it does not fit in `capacity` or the prefix breaks the §2 rule.
size_t buildSharedImageTopic(char* out, size_t capacity, const char* prefix,
                             const uint8_t sha256[kSha256Bytes], uint32_t streamId);

/// Parses `topic` as a topic of device `deviceId` under `prefix`. On success sets `kind` (and
/// for ACK `senderId`, a view into `topic`) and returns true; any other topic returns false.
bool parseDeviceTopic(Bytes topic, const char* prefix, const char* deviceId, TopicKind& kind,
                      Bytes& senderId);

/// True when `topic` is `{prefix}/dev/{deviceId}/ack/{senderId}` with a valid sender id: the only
/// kind of topic a receiver may accept as the ack topic of a MANIFEST.
bool isAckTopicOf(Bytes topic, const char* prefix, const char* deviceId);

}  // namespace ota_core
