// ota_core/assembler.h: rebuilds one MQTT message from the fragments a client library hands over
// (esp-mqtt splits a PUBLISH larger than its receive buffer into several MQTT_EVENT_DATA events:
// `current_data_offset`, `total_data_len`; topic and MQTT 5 properties come only with the first).
// It copies the Response Topic and Correlation Data of the first fragment because the library's
// buffer is overwritten by the next fragment. Fixed storage supplied by the caller; no heap.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ota_core/codec.h"
#include "ota_core/limits.h"

namespace ota_core {

/// One complete MQTT message with the properties the receiver needs.
struct InboundMessage {
  Bytes topic;
  Bytes payload;
  /// Response Topic property (empty when absent).
  Bytes responseTopic;
  /// Correlation Data property; `correlationTooLong` is set when it exceeded kCorrelationBytes
  /// (such a value can never equal ours, so only its absence/presence matters).
  Bytes correlation;
  bool correlationTooLong = false;
};

/// Metadata of the first fragment of a message.
struct FragmentHeader {
  Bytes topic;
  Bytes responseTopic;
  Bytes correlation;
};

/// Reassembles fragmented messages into caller-provided storage of `capacity` bytes.
class MessageAssembler {
 public:
  enum class Result : uint8_t {
    COMPLETE,    ///< message() holds a whole message
    PENDING,     ///< more fragments needed
    DROPPED,     ///< the message was larger than capacity, or a fragment was out of sequence
  };

  MessageAssembler(uint8_t* storage, size_t capacity) : buf_(storage), cap_(capacity) {}

  /// Feeds one fragment: `offset` is its position in a message of `total` bytes. `header` is read
  /// only when `offset` is 0. A fragment that does not continue the current message drops it;
  /// a new first fragment always starts over.
  Result feed(const FragmentHeader& header, const uint8_t* data, size_t size, size_t offset,
              size_t total);
  /// The last COMPLETE message; valid until the next feed().
  const InboundMessage& message() const { return msg_; }
  size_t capacity() const { return cap_; }

 private:
  uint8_t* buf_;
  size_t cap_;
  size_t expectedOffset_ = 0;
  size_t total_ = 0;
  bool active_ = false;
  bool skipping_ = false;
  uint8_t topic_[kMaxTopicBytes];
  uint8_t responseTopic_[kMaxTopicBytes];
  uint8_t correlation_[kCorrelationBytes];
  InboundMessage msg_;
};

}  // namespace ota_core
