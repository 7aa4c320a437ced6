// self_test.cpp: see self_test.h.
#include "ota_core/self_test.h"

#include <cstdio>
#include <cstring>

#include "ota_core/inbox.h"

namespace ota_core {

const char* toString(SelfTestPhase phase) {
  switch (phase) {
    case SelfTestPhase::IDLE: return "IDLE";
    case SelfTestPhase::REPORT_DUE: return "REPORT_DUE";
    case SelfTestPhase::WAITING_LINK: return "WAITING_LINK";
    case SelfTestPhase::WAITING_ANSWER: return "WAITING_ANSWER";
    case SelfTestPhase::PASSED: return "PASSED";
    case SelfTestPhase::ROLLING_BACK: return "ROLLING_BACK";
    case SelfTestPhase::KEPT_AFTER_FAILED_ROLLBACK: return "KEPT_AFTER_FAILED_ROLLBACK";
  }
  return "UNKNOWN";
}

SelfTest::SelfTest(BootControl& control, BootStore& store, Publisher& publisher,
                   const char* statusTopic, const char* runningVersion, uint32_t timeoutMs)
    : control_(control),
      store_(store),
      publisher_(publisher),
      statusTopic_(statusTopic),
      runningVersion_(runningVersion),
      timeoutMs_(timeoutMs) {}

void SelfTest::begin(uint32_t nowMs) {
  haveRecord_ = store_.loadBootRecord(record_);
  deadlineMs_ = nowMs + timeoutMs_;
  if (control_.pendingVerify()) {
    phase_ = SelfTestPhase::WAITING_LINK;
  } else {
    phase_ = haveRecord_ ? SelfTestPhase::REPORT_DUE : SelfTestPhase::IDLE;
  }
}

void SelfTest::onLinkEvents(uint32_t events) {
  if ((events & kLinkSubscribeRefused) != 0 && onProbation()) {
    fail("the broker refused a subscription");
    return;
  }
  if ((events & kLinkReady) == 0) return;
  if (phase_ == SelfTestPhase::WAITING_LINK) {
    phase_ = SelfTestPhase::WAITING_ANSWER;
  } else if (phase_ == SelfTestPhase::REPORT_DUE) {
    // Not on probation, yet a record is there: either the bootloader went back to the old slot
    // (the new image crashed or failed its self-test), or the switch never happened (power cut
    // right after the record was saved), or the BOOTED report of a passed self-test was lost.
    bool booted = std::strcmp(record_.slot, control_.runningSlot()) == 0;
    report(booted ? StatusCode::BOOTED : StatusCode::ROLLED_BACK,
           booted ? "running the new image" : "the new image did not stay booted");
    phase_ = SelfTestPhase::IDLE;
  }
}

void SelfTest::onMessage(const InboundMessage& m, const char* dataTopic, const char* errorTopic,
                         Bytes requestCorrelation, bool mqtt5) {
  if (phase_ != SelfTestPhase::WAITING_ANSWER) return;
  bool onData = equals(m.topic, dataTopic);
  bool onError = equals(m.topic, errorTopic);
  MessageType type{};
  if ((!onData && !onError) || peekType(m.payload.data, m.payload.size, type) != DecodeError::NONE) {
    return;
  }
  // The error topic carries answers to requests without a usable Response Topic (protocol §3,
  // D2): they cannot echo correlation. Elsewhere, with MQTT 5, only our request's counts.
  bool ours = !mqtt5 || onError ||
              (requestCorrelation.size != 0 && !m.correlationTooLong &&
               equals(m.correlation, requestCorrelation));
  if (!ours) return;
  if (type == MessageType::MANIFEST && onData) {
    Manifest manifest;
    if (decodeManifest(m.payload.data, m.payload.size, manifest) == DecodeError::NONE) pass();
  } else if (type == MessageType::ERROR) {
    ErrorMessage error;
    if (decodeError(m.payload.data, m.payload.size, error) == DecodeError::NONE &&
        error.code == ErrorCode::UP_TO_DATE) {
      pass();
    }
  }
}

void SelfTest::tick(uint32_t nowMs) {
  if (onProbation() && static_cast<int32_t>(nowMs - deadlineMs_) >= 0) {
    fail(phase_ == SelfTestPhase::WAITING_LINK ? "no broker connection within the self-test time"
                                               : "no answer from the sender within the self-test time");
  }
}

void SelfTest::pass() {
  // Valid first: a MANIFEST that follows makes the Receiver call esp_ota_begin, which refuses
  // (ESP_ERR_OTA_ROLLBACK_INVALID_STATE) while the running image is PENDING_VERIFY.
  control_.markValid();
  phase_ = SelfTestPhase::PASSED;
  report(StatusCode::BOOTED, "self-test passed");
}

void SelfTest::fail(const char* why) {
  failure_ = why;
  phase_ = SelfTestPhase::ROLLING_BACK;
  if (control_.rollback()) return;  // the ESP32 restarted inside; the host caller exits
  // Nothing to roll back to (esp_ota_mark_app_invalid_rollback_and_reboot returned
  // ESP_ERR_OTA_ROLLBACK_FAILED). Staying PENDING_VERIFY would make every esp_ota_begin fail,
  // so keep this image, say so, and stay updatable.
  control_.markValid();
  phase_ = SelfTestPhase::KEPT_AFTER_FAILED_ROLLBACK;
  // Prefix and reason cut at the STATUS detail bound (§4.6). Copied by hand: an snprintf with
  // a reason known to be cut is a -Wformat-truncation error at -O2 under -Werror.
  static constexpr char kPrefix[] = "self-test failed, no image to roll back to: ";
  char detail[kMaxStatusDetailBytes + 1];
  size_t n = 0;
  for (const char* p = kPrefix; *p != '\0' && n < kMaxStatusDetailBytes; ++p) detail[n++] = *p;
  for (const char* p = why; *p != '\0' && n < kMaxStatusDetailBytes; ++p) detail[n++] = *p;
  detail[n] = '\0';
  report(StatusCode::BOOTED, detail);
}

void SelfTest::report(StatusCode code, const char* detail) {
  const uint8_t* sha = record_.sha256;
  const char* version = haveRecord_ ? record_.version : runningVersion_;
  uint8_t buf[kMaxStatusBytes];
  size_t n = encodeBootStatus(code, sha, version, detail, buf, sizeof buf);
  if (n != 0) publisher_.publish(statusTopic_, buf, n, nullptr, Bytes{});
  store_.clearBootRecord();
  haveRecord_ = false;
}

bool RecordingSink::activate() {
  BootRecord record;
  if (receiver_ != nullptr) {
    const Outcome& o = receiver_->outcome();
    std::memcpy(record.sha256, o.sha256, sizeof record.sha256);
    std::snprintf(record.version, sizeof record.version, "%s", o.version);
  }
  std::snprintf(record.slot, sizeof record.slot, "%s", slotLabel_);
  if (!store_.saveBootRecord(record)) return false;
  if (inner_.activate()) return true;
  store_.clearBootRecord();  // nothing was switched: nothing to report at the next boot
  return false;
}

}  // namespace ota_core
