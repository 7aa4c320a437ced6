// ota_core/self_test.h: the boot self-test and the boot report (protocol §8, STATUS BOOTED /
// ROLLED_BACK). A new image boots as PENDING_VERIFY; it is marked valid only after it proved it
// can still be updated: every subscription granted (esp-mqtt reports a refusing SUBACK as
// MQTT_EVENT_SUBSCRIBED too, with only error_type set) and one full REQUEST -> answer round trip
// with the sender (a MANIFEST, or ERROR UP_TO_DATE, carrying this request's correlation). An
// image that the broker's ACL or a wrong prefix cuts off is rolled back instead. The platform
// glue only implements BootControl and BootStore; the decisions live here and are unit-tested.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ota_core/assembler.h"
#include "ota_core/codec.h"
#include "ota_core/limits.h"
#include "ota_core/platform.h"
#include "ota_core/receiver.h"

namespace ota_core {

/// Longest slot label kept in a BootRecord (ESP-IDF partition labels are 16 characters).
constexpr size_t kMaxSlotLabelBytes = 16;

/// What the device activated before its restart; the next boot reports BOOTED or ROLLED_BACK
/// from it. Saved *before* the boot slot is switched, so that no switch exists without it.
struct BootRecord {
  uint8_t sha256[kSha256Bytes] = {};
  char version[kMaxVersionBytes + 1] = {};
  /// Label of the slot that was made the boot slot ("ota_0" / "ota_1").
  char slot[kMaxSlotLabelBytes + 1] = {};
};

/// Persistent home of at most one BootRecord (NVS on the ESP32).
class BootStore {
 public:
  virtual ~BootStore() = default;
  virtual bool loadBootRecord(BootRecord& out) = 0;
  virtual bool saveBootRecord(const BootRecord& record) = 0;
  virtual void clearBootRecord() = 0;
};

/// The platform's boot manager (esp_ota_* with CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE).
class BootControl {
 public:
  virtual ~BootControl() = default;
  /// The running image is on probation (ESP_OTA_IMG_PENDING_VERIFY).
  virtual bool pendingVerify() = 0;
  /// Label of the slot running now.
  virtual const char* runningSlot() = 0;
  /// Ends the probation (esp_ota_mark_app_valid_cancel_rollback).
  virtual bool markValid() = 0;
  /// Marks the image invalid and restarts into the previous one. Returns only when that failed
  /// (esp_ota_mark_app_invalid_rollback_and_reboot returns ESP_ERR_OTA_ROLLBACK_FAILED without
  /// restarting when no other valid image exists); the host implementation returns true after
  /// switching its boot slot back, and its caller exits.
  virtual bool rollback() = 0;
};

/// Where the self-test stands.
enum class SelfTestPhase : uint8_t {
  /// No probation and nothing to report: an ordinary boot.
  IDLE,
  /// No probation, but a BootRecord waits to be reported once the link is up.
  REPORT_DUE,
  /// On probation: waiting for the link (connected, subscriptions granted).
  WAITING_LINK,
  /// On probation: link up, waiting for the answer to a REQUEST.
  WAITING_ANSWER,
  /// Probation passed: marked valid and reported BOOTED.
  PASSED,
  /// Probation failed and the platform is rolling back (the ESP32 restarts inside rollback()).
  ROLLING_BACK,
  /// Probation failed but there was nothing to roll back to: the image was kept and marked valid
  /// so that esp_ota_begin (which refuses while PENDING_VERIFY) can install a fix.
  KEPT_AFTER_FAILED_ROLLBACK,
};
const char* toString(SelfTestPhase phase);

/// The self-test; every call from the receiver task (it publishes the boot report).
class SelfTest {
 public:
  /// `statusTopic` is `{p}/dev/{id}/status`; `runningVersion` the version of this image;
  /// `timeoutMs` how long a pending image has to pass before it is rolled back.
  SelfTest(BootControl& control, BootStore& store, Publisher& publisher, const char* statusTopic,
           const char* runningVersion, uint32_t timeoutMs);

  /// Reads the probation state and the boot record; starts the self-test clock.
  void begin(uint32_t nowMs);
  /// LinkEvent bits from the network task (see inbox.h).
  void onLinkEvents(uint32_t events);
  /// Every inbound message, before the Receiver sees it: a MANIFEST (the Receiver then calls
  /// esp_ota_begin, which refuses while PENDING_VERIFY) or an UP_TO_DATE answering the request
  /// whose correlation is `requestCorrelation` completes the round trip. `dataTopic` and
  /// `errorTopic` are the receiver's; `mqtt5` says whether correlation can be checked.
  void onMessage(const InboundMessage& message, const char* dataTopic, const char* errorTopic,
                 Bytes requestCorrelation, bool mqtt5);
  /// Fails a pending self-test whose time ran out.
  void tick(uint32_t nowMs);

  SelfTestPhase phase() const { return phase_; }
  /// Why the self-test failed (empty while it did not).
  const char* failure() const { return failure_; }
  /// A pending image that has not passed yet (the glue keeps its update checks quiet meanwhile).
  bool onProbation() const {
    return phase_ == SelfTestPhase::WAITING_LINK || phase_ == SelfTestPhase::WAITING_ANSWER;
  }

 private:
  void pass();
  void fail(const char* why);
  void report(StatusCode code, const char* detail);

  BootControl& control_;
  BootStore& store_;
  Publisher& publisher_;
  const char* statusTopic_;
  const char* runningVersion_;
  uint32_t timeoutMs_;
  uint32_t deadlineMs_ = 0;
  SelfTestPhase phase_ = SelfTestPhase::IDLE;
  bool haveRecord_ = false;
  BootRecord record_;
  const char* failure_ = "";
};

/// A FlashSink decorator that saves the BootRecord (SHA-256 and version of the outcome being
/// activated, label of the slot) before it lets the inner sink switch the boot slot. A power cut
/// between the two then reports ROLLED_BACK with the real SHA-256, never BOOTED with zeros; a
/// record that cannot be saved refuses the switch (the receiver reports FLASH_ERROR).
class RecordingSink : public FlashSink {
 public:
  /// `slotLabel` names the slot `inner` writes to; it must outlive the sink.
  RecordingSink(FlashSink& inner, BootStore& store, const char* slotLabel)
      : inner_(inner), store_(store), slotLabel_(slotLabel) {}
  /// The receiver whose outcome (sha256, version) is recorded; set before the first activate().
  void watch(const Receiver& receiver) { receiver_ = &receiver; }

  uint32_t capacity() const override { return inner_.capacity(); }
  SinkResult begin(uint32_t size, ImageKind kind) override { return inner_.begin(size, kind); }
  SinkResult resume(uint32_t offset, uint32_t size, ImageKind kind) override {
    return inner_.resume(offset, size, kind);
  }
  SinkResult write(const uint8_t* data, size_t size) override { return inner_.write(data, size); }
  bool read(uint32_t offset, uint8_t* out, size_t size) override {
    return inner_.read(offset, out, size);
  }
  SinkResult finish() override { return inner_.finish(); }
  bool activate() override;
  void abort() override { inner_.abort(); }

 private:
  FlashSink& inner_;
  BootStore& store_;
  const char* slotLabel_;
  const Receiver* receiver_ = nullptr;
};

}  // namespace ota_core
