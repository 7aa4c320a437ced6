// ota_core/receiver_task.h: the body of the receiver task, the one task that owns the Receiver.
// It blocks on the Inbox with a timeout that drives Receiver::tick(), hands each message to the
// self-test and the Receiver (which writes the flash and hashes in this task), gives the slot
// back, and is the only task that publishes: esp-mqtt keeps the pointer given to
// esp_mqtt5_client_set_publish_property() until the next publish, so property + publish must
// never interleave with another task's. The platform runs step() in a loop in a task of its own
// (FreeRTOS on the ESP32, std::thread on the host).
#pragma once

#include <cstddef>
#include <cstdint>

#include "ota_core/inbox.h"
#include "ota_core/limits.h"
#include "ota_core/platform.h"
#include "ota_core/receiver.h"
#include "ota_core/self_test.h"

namespace ota_core {

/// Messages queued for sending while every inbox slot is taken: ACKs and STATUS of a few chunks.
constexpr size_t kMaxDeferredPublishes = 8;

/// The Publisher the Receiver and the self-test use, in front of the transport. It remembers the
/// Correlation Data of the last REQUEST, so the self-test can tell the answer to it; and between
/// hold() and flush() it queues what is published instead of sending it. The receiver task holds
/// whenever it may be the reason the network task waits for a slot (while it handles a message,
/// and while every slot is taken): the network task waits with esp-mqtt's API lock held, and a
/// publish would wait for that lock (inbox.h). A message the queue cannot take (full, or with
/// MQTT 5 properties: a REQUEST, never sent while chunks stream in) is sent at once.
class TrackingPublisher : public Publisher {
 public:
  TrackingPublisher(Publisher& inner, const char* requestTopic)
      : inner_(inner), requestTopic_(requestTopic) {}
  bool publish(const char* topic, const uint8_t* data, size_t size, const char* responseTopic,
               Bytes correlation) override;
  /// Subscriptions take esp-mqtt's API lock like a publish: while holding, the one pending
  /// (un)subscription waits for flush(), a later one replacing it.
  bool subscribe(const char* topic) override;
  void unsubscribe(const char* topic) override;
  /// Queue publishes from now on.
  void hold() { holding_ = true; }
  /// Send what was queued, in order, and stop queueing.
  void flush();
  /// Correlation Data of the last REQUEST (empty before the first).
  Bytes lastRequestCorrelation() const { return Bytes{correlation_, correlationSize_}; }
  /// Messages passed to the transport so far.
  uint32_t published() const { return published_; }
  /// Messages that were queued by hold() and sent by flush().
  uint32_t deferred() const { return deferredTotal_; }

 private:
  /// A queued message without MQTT 5 properties (ACK and STATUS carry none).
  struct Deferred {
    char topic[kMaxTopicBytes + 1];
    uint8_t data[kMaxStatusBytes > kAckBytes ? kMaxStatusBytes : kAckBytes];
    size_t size;
  };

  Publisher& inner_;
  const char* requestTopic_;
  uint8_t correlation_[kCorrelationBytes] = {};
  size_t correlationSize_ = 0;
  uint32_t published_ = 0;
  bool holding_ = false;
  Deferred queue_[kMaxDeferredPublishes];
  /// The (un)subscription waiting for flush(); empty topic when none.
  char pendingTopic_[kMaxTopicBytes + 1] = {};
  bool pendingSubscribe_ = false;
  size_t queued_ = 0;
  uint32_t deferredTotal_ = 0;
};

/// Settings of the receiver task.
struct ReceiverTaskOptions {
  /// Longest wait for a message before the Receiver is ticked (its delayed ACKs need
  /// kAckFlushDelayMs; its timeouts are seconds).
  uint32_t tickMs = kAckFlushDelayMs;
  /// Milliseconds between update checks while idle (0 = only when the link comes up).
  uint32_t checkIntervalMs = 0;
  /// MQTT 5 (correlation can be checked by the self-test).
  bool mqtt5 = true;
};

/// See file header.
class ReceiverTask {
 public:
  /// `publisher` must be the TrackingPublisher the Receiver publishes through; `selfTest` may be
  /// nullptr (no probation handling, e.g. the host CLI without a boot model).
  ReceiverTask(Receiver& receiver, Inbox& inbox, Clock& clock, TrackingPublisher& publisher,
               SelfTest* selfTest, const ReceiverTaskOptions& options);

  /// One iteration: wait up to tickMs for a message or link event, handle it, tick.
  void step();

  /// Connected with every subscription granted (and not lost since).
  bool linkReady() const { return linkReady_; }
  /// Messages handed to the Receiver.
  uint32_t messages() const { return messages_; }

 private:
  void onLinkEvents(uint32_t events, uint32_t nowMs);
  void startIfIdle(uint32_t nowMs);

  Receiver& rx_;
  Inbox& inbox_;
  Clock& clock_;
  TrackingPublisher& publisher_;
  SelfTest* selfTest_;
  ReceiverTaskOptions options_;
  bool linkReady_ = false;
  uint32_t lastCheckMs_ = 0;
  uint32_t messages_ = 0;
};

}  // namespace ota_core
