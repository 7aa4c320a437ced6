// ota_core/platform.h: the four small interfaces a platform implements for the receiver (the
// "PAL" of the core): where image bytes go (FlashSink), how messages leave (Publisher), where the
// resume point survives a reboot (StateStore) and what time it is (Clock). The ESP-IDF glue in
// firmware/src/ and the host build in firmware/host/ each provide one implementation of each.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ota_core/codec.h"
#include "ota_core/limits.h"

namespace ota_core {

/// Outcome of a flash operation. IMAGE_INVALID is a verdict on the image, not on the flash
/// (esp_ota_write refusing a first byte other than 0xE9, esp_ota_end failing validation): the
/// receiver reports it as STATUS IMAGE_INVALID instead of retrying.
enum class SinkResult : uint8_t { OK, FAILED, IMAGE_INVALID };

/// The inactive application slot, written strictly sequentially (like esp_ota_write with
/// OTA_WITH_SEQUENTIAL_WRITES).
class FlashSink {
 public:
  virtual ~FlashSink() = default;
  /// Bytes the slot can hold; a MANIFEST with a larger `size` is refused.
  virtual uint32_t capacity() const = 0;
  /// Opens the slot for a new image of `size` bytes written from offset 0.
  virtual SinkResult begin(uint32_t size, ImageKind kind) = 0;
  /// Reopens the slot to continue an image whose first `offset` bytes are already written
  /// (closes a handle that is still open first).
  virtual SinkResult resume(uint32_t offset, uint32_t size, ImageKind kind) = 0;
  /// Appends `size` bytes at the current write position. A failure leaves the position unchanged.
  virtual SinkResult write(const uint8_t* data, size_t size) = 0;
  /// Reads back already written bytes (used to rehash them on resume).
  virtual bool read(uint32_t offset, uint8_t* out, size_t size) = 0;
  /// Closes the write (esp_ota_end: validates an ESP32 image).
  virtual SinkResult finish() = 0;
  /// Makes the finished image the one that boots next (esp_ota_set_boot_partition). Called only
  /// after finish() succeeded, or after an HttpDownloader finished the same slot (protocol §8.8),
  /// and SHA-256 and signature matched.
  virtual bool activate() = 0;
  /// Drops an open write; the boot slot is left untouched.
  virtual void abort() = 0;
};

/// Sends one MQTT message. `responseTopic` and `correlation` are MQTT 5 properties (nullptr /
/// empty = absent); a 3.1.1 transport ignores them.
class Publisher {
 public:
  virtual ~Publisher() = default;
  virtual bool publish(const char* topic, const uint8_t* data, size_t size,
                       const char* responseTopic, Bytes correlation) = 0;
  /// Subscribes (QoS 0) to a shared image topic (protocol §11.4); its messages then reach
  /// Receiver::onMessage like the data topic's. False when the platform cannot (the default): the
  /// transfer goes on by unicast (§11.3).
  virtual bool subscribe(const char* topic) {
    (void)topic;
    return false;
  }
  /// Ends a subscription made by subscribe().
  virtual void unsubscribe(const char* topic) { (void)topic; }
};

/// What the receiver must remember across a reboot to resume an image (protocol §9).
struct ResumePoint {
  uint8_t sha256[kSha256Bytes] = {};
  /// Bytes of the image written and flushed so far.
  uint32_t offset = 0;
  uint32_t size = 0;
  ImageKind kind = ImageKind::ESP32_APP;
  char product[kMaxProductBytes + 1] = {};
  char version[kMaxVersionBytes + 1] = {};
};

/// Persistent storage of at most one resume point (NVS on the ESP32, a file on the host).
class StateStore {
 public:
  virtual ~StateStore() = default;
  virtual bool load(ResumePoint& out) = 0;
  /// Called after every written chunk; an implementation may write only the changed offset.
  virtual bool save(const ResumePoint& point) = 0;
  virtual void clear() = 0;
};

/// Monotonic milliseconds (wraps after 49 days; the receiver compares differences only).
class Clock {
 public:
  virtual ~Clock() = default;
  virtual uint32_t nowMs() = 0;
};

}  // namespace ota_core
