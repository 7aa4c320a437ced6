// receiver_task.cpp: see receiver_task.h.
#include "ota_core/receiver_task.h"

#include <cstring>

namespace ota_core {

bool TrackingPublisher::publish(const char* topic, const uint8_t* data, size_t size,
                                const char* responseTopic, Bytes correlation) {
  if (std::strcmp(topic, requestTopic_) == 0) {
    correlationSize_ = correlation.size <= sizeof correlation_ ? correlation.size : 0;
    if (correlationSize_ != 0) std::memcpy(correlation_, correlation.data, correlationSize_);
  }
  ++published_;
  return inner_.publish(topic, data, size, responseTopic, correlation);
}

ReceiverTask::ReceiverTask(Receiver& receiver, Inbox& inbox, Clock& clock,
                           const TrackingPublisher& publisher, SelfTest* selfTest,
                           const ReceiverTaskOptions& options)
    : rx_(receiver),
      inbox_(inbox),
      clock_(clock),
      publisher_(publisher),
      selfTest_(selfTest),
      options_(options) {}

void ReceiverTask::step() {
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
  if (selfTest_ != nullptr) selfTest_->tick(now);
  if (options_.checkIntervalMs != 0 && linkReady_ &&
      static_cast<uint32_t>(now - lastCheckMs_) >= options_.checkIntervalMs) {
    startIfIdle(now);
  }
}

void ReceiverTask::onLinkEvents(uint32_t events, uint32_t nowMs) {
  if ((events & kLinkDown) != 0) linkReady_ = false;
  if ((events & kLinkReady) != 0) linkReady_ = true;
  if (selfTest_ != nullptr) selfTest_->onLinkEvents(events);
  // Ask as soon as the link is up; a request already out is retried by the Receiver itself.
  if ((events & kLinkReady) != 0 && (events & kLinkSubscribeRefused) == 0) startIfIdle(nowMs);
}

void ReceiverTask::startIfIdle(uint32_t nowMs) {
  lastCheckMs_ = nowMs;
  if (rx_.state() == State::IDLE || rx_.state() == State::FAILED) rx_.start();
}

}  // namespace ota_core
