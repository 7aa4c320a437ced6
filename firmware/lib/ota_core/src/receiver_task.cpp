// receiver_task.cpp: see receiver_task.h.
#include "ota_core/receiver_task.h"

#include <cstring>

namespace ota_core {
namespace {

/// A plain cumulative ACK (no NACK reason): a later one for the same transfer replaces it.
bool isPlainAck(const uint8_t* data, size_t size, Ack& out) {
  return decodeAck(data, size, out) == DecodeError::NONE && out.nack == NackReason::NONE;
}

}  // namespace

bool TrackingPublisher::publish(const char* topic, const uint8_t* data, size_t size,
                                const char* responseTopic, Bytes correlation) {
  if (std::strcmp(topic, requestTopic_) == 0) {
    correlationSize_ = correlation.size <= sizeof correlation_ ? correlation.size : 0;
    if (correlationSize_ != 0) std::memcpy(correlation_, correlation.data, correlationSize_);
  }
  size_t topicBytes = std::strlen(topic);
  bool plain = holding_ && responseTopic == nullptr && correlation.size == 0 &&
               size <= sizeof queue_[0].data && topicBytes <= kMaxTopicBytes;
  Ack next, last;
  if (plain && queued_ != 0 && std::strcmp(queue_[queued_ - 1].topic, topic) == 0 &&
      isPlainAck(data, size, next) &&
      isPlainAck(queue_[queued_ - 1].data, queue_[queued_ - 1].size, last) &&
      last.transferId == next.transferId) {
    // ACKs are cumulative (protocol §4.5): the newer one says all the older one did.
    std::memcpy(queue_[queued_ - 1].data, data, size);
    return true;
  }
  if (plain && queued_ < kMaxDeferredPublishes) {
    Deferred& d = queue_[queued_++];
    std::memcpy(d.topic, topic, topicBytes + 1);
    std::memcpy(d.data, data, size);
    d.size = size;
    return true;
  }
  // Not holding, or a message the queue does not take (never one the Receiver sends while it
  // handles a message): send it now.
  ++published_;
  return inner_.publish(topic, data, size, responseTopic, correlation);
}

bool TrackingPublisher::subscribe(const char* topic) {
  if (!holding_) return inner_.subscribe(topic);
  size_t n = std::strlen(topic);
  if (n > kMaxTopicBytes) return false;
  std::memcpy(pendingTopic_, topic, n + 1);
  pendingSubscribe_ = true;
  return true;  // a platform that cannot subscribe fails in flush(): the transfer goes unicast
}

void TrackingPublisher::unsubscribe(const char* topic) {
  if (!holding_) return inner_.unsubscribe(topic);
  size_t n = std::strlen(topic);
  if (n > kMaxTopicBytes) return;
  if (pendingSubscribe_ && std::strcmp(pendingTopic_, topic) == 0) {
    pendingTopic_[0] = '\0';  // subscribed and left within one step: nothing to do
    return;
  }
  std::memcpy(pendingTopic_, topic, n + 1);
  pendingSubscribe_ = false;
}

void TrackingPublisher::flush() {
  holding_ = false;
  if (pendingTopic_[0] != '\0') {
    if (pendingSubscribe_) inner_.subscribe(pendingTopic_);
    else inner_.unsubscribe(pendingTopic_);
    pendingTopic_[0] = '\0';
  }
  for (size_t i = 0; i < queued_; ++i) {
    ++published_;
    ++deferredTotal_;
    inner_.publish(queue_[i].topic, queue_[i].data, queue_[i].size, nullptr, Bytes{});
  }
  queued_ = 0;
}

ReceiverTask::ReceiverTask(Receiver& receiver, Inbox& inbox, Clock& clock,
                           TrackingPublisher& publisher, SelfTest* selfTest,
                           const ReceiverTaskOptions& options)
    : rx_(receiver),
      inbox_(inbox),
      clock_(clock),
      publisher_(publisher),
      selfTest_(selfTest),
      options_(options) {}

void ReceiverTask::step() {
  // Everything this step publishes is queued and sent at the end, once a slot is free.
  publisher_.hold();
  const InboundMessage* message = nullptr;
  uint32_t slot = inbox_.receive(options_.tickMs, message);
  uint32_t now = clock_.nowMs();
  uint32_t events = inbox_.takeEvents();
  if (events != 0) onLinkEvents(events, now);
  if (slot != Inbox::kNone) {
    if (selfTest_ != nullptr) {
      selfTest_->onMessage(*message, rx_.dataTopic(), rx_.errorTopic(),
                           publisher_.lastRequestCorrelation(), options_.mqtt5);
    }
    rx_.onMessage(*message);  // flash writes and hashing happen here, in this task
    inbox_.release(slot);
    ++messages_;
    now = clock_.nowMs();
  }
  rx_.tick(now);
  // A URL MANIFEST (§8.8): the download runs here, in this task, like chunk writes do.
  if (rx_.runPendingHttpDownload()) now = clock_.nowMs();
  if (selfTest_ != nullptr) selfTest_->tick(now);
  if (options_.checkIntervalMs != 0 && linkReady_ &&
      static_cast<uint32_t>(now - lastCheckMs_) >= options_.checkIntervalMs) {
    startIfIdle(now);
  }
  // With every slot taken the network task may be waiting for one, holding the lock a publish
  // needs: keep the queue until the next message is handled and its slot released.
  if (inbox_.hasFreeSlot()) publisher_.flush();
}

void ReceiverTask::onLinkEvents(uint32_t events, uint32_t nowMs) {
  if ((events & kLinkDown) != 0) linkReady_ = false;
  if ((events & kLinkReady) != 0) linkReady_ = true;
  if (selfTest_ != nullptr) selfTest_->onLinkEvents(events);
  // A new connection without the old session: what the receiver subscribed is gone
  // (link_session.h).
  if ((events & kLinkSessionLost) != 0) rx_.onSessionLost();
  // Ask as soon as the link is up; a request already out is retried by the Receiver itself.
  if ((events & kLinkReady) != 0 && (events & kLinkSubscribeRefused) == 0) startIfIdle(nowMs);
}

void ReceiverTask::startIfIdle(uint32_t nowMs) {
  lastCheckMs_ = nowMs;
  if (rx_.state() == State::IDLE || rx_.state() == State::FAILED) rx_.start();
}

}  // namespace ota_core
