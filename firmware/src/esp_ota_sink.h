// esp_ota_sink.h: FlashSink over the inactive OTA app partition with esp_ota_* (ESP-IDF 5.5).
#pragma once

#include "esp_ota_ops.h"
#include "esp_partition.h"
#include "ota_core/platform.h"
#include "ota_core/resume_store.h"

/// Writes the next update partition sequentially (OTA_WITH_SEQUENTIAL_WRITES: each 4 KiB sector
/// is erased when the write reaches it), resumes with esp_ota_resume() after a reboot (with the
/// rollback checks esp_ota_begin() makes and esp_ota_resume() does not), and switches the boot
/// partition only in activate().
class EspOtaSink : public ota_core::FlashSink {
 public:
  EspOtaSink();
  /// The partition updates go to (nullptr when the partition table has no second OTA slot).
  const esp_partition_t* partition() const { return part_; }
  /// Label of that partition ("" without one).
  const char* label() const;
  /// Address and size of that partition, which a resume record must name to be resumed.
  ota_core::SlotId slotId() const;
  uint32_t capacity() const override;
  ota_core::SinkResult begin(uint32_t size, ota_core::ImageKind kind) override;
  ota_core::SinkResult resume(uint32_t offset, uint32_t size, ota_core::ImageKind kind) override;
  ota_core::SinkResult write(const uint8_t* data, size_t size) override;
  bool read(uint32_t offset, uint8_t* out, size_t size) override;
  ota_core::SinkResult finish() override;
  bool activate() override;
  void abort() override;

 private:
  const esp_partition_t* part_;
  esp_ota_handle_t handle_ = 0;
  bool open_ = false;
};
