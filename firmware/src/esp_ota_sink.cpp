// esp_ota_sink.cpp: see esp_ota_sink.h. Semantics from ESP-IDF v5.5.3
// components/app_update/esp_ota_ops.c and include/esp_ota_ops.h.
#include "esp_ota_sink.h"

#include "esp_log.h"
#include "esp_ota_errors.h"

namespace {
const char* const kTag = "ota_sink";
}  // namespace

EspOtaSink::EspOtaSink() : part_(esp_ota_get_next_update_partition(nullptr)) {}

const char* EspOtaSink::label() const { return part_ != nullptr ? part_->label : ""; }

uint32_t EspOtaSink::capacity() const { return part_ != nullptr ? part_->size : 0; }

ota_core::SinkResult EspOtaSink::begin(uint32_t size, ota_core::ImageKind kind) {
  abort();
  if (part_ == nullptr || kind != ota_core::ImageKind::ESP32_APP || size > part_->size) {
    return ota_core::SinkResult::FAILED;
  }
  esp_err_t err = esp_ota_begin(part_, OTA_WITH_SEQUENTIAL_WRITES, &handle_);
  if (err != ESP_OK) {
    ESP_LOGE(kTag, "esp_ota_begin(%s): %s", part_->label, esp_err_to_name(err));
    return ota_core::SinkResult::FAILED;
  }
  open_ = true;
  return ota_core::SinkResult::OK;
}

ota_core::SlotId EspOtaSink::slotId() const {
  ota_core::SlotId id;
  if (part_ != nullptr) {
    id.address = part_->address;
    id.size = part_->size;
  }
  return id;
}

ota_core::SinkResult EspOtaSink::resume(uint32_t offset, uint32_t size, ota_core::ImageKind kind) {
  abort();
  if (part_ == nullptr || kind != ota_core::ImageKind::ESP32_APP || size > part_->size) {
    return ota_core::SinkResult::FAILED;
  }
  // esp_ota_resume (esp_ota_ops.c) skips two things esp_ota_begin does: otaResumeGuard() does
  // them. (That the stored offset belongs to this partition at all is checked when the resume
  // record is loaded: ota_core::ResumeRecordStore.)
  if (otaResumeGuard(kTag) != ESP_OK) return ota_core::SinkResult::FAILED;
  // erase_size = OTA_WITH_SEQUENTIAL_WRITES: sectors are erased as writes reach them; the core
  // resumes on a sector boundary after a reboot so the first write erases a fresh sector.
  esp_err_t err = esp_ota_resume(part_, OTA_WITH_SEQUENTIAL_WRITES, offset, &handle_);
  if (err != ESP_OK) {
    ESP_LOGE(kTag, "esp_ota_resume(%s, %lu): %s", part_->label, static_cast<unsigned long>(offset),
             esp_err_to_name(err));
    return ota_core::SinkResult::FAILED;
  }
  open_ = true;
  return ota_core::SinkResult::OK;
}

ota_core::SinkResult EspOtaSink::write(const uint8_t* data, size_t size) {
  if (!open_) return ota_core::SinkResult::FAILED;
  esp_err_t err = esp_ota_write(handle_, data, size);
  if (err != ESP_OK) ESP_LOGW(kTag, "esp_ota_write: %s", esp_err_to_name(err));
  return otaErrorToResult(err);
}

bool EspOtaSink::read(uint32_t offset, uint8_t* out, size_t size) {
  return part_ != nullptr && esp_partition_read(part_, offset, out, size) == ESP_OK;
}

ota_core::SinkResult EspOtaSink::finish() {
  if (!open_) return ota_core::SinkResult::FAILED;
  open_ = false;  // esp_ota_end frees the handle whatever it returns
  esp_err_t err = esp_ota_end(handle_);
  if (err != ESP_OK) ESP_LOGE(kTag, "esp_ota_end: %s", esp_err_to_name(err));
  return otaErrorToResult(err);
}

bool EspOtaSink::activate() {
  esp_err_t err = esp_ota_set_boot_partition(part_);
  if (err != ESP_OK) ESP_LOGE(kTag, "esp_ota_set_boot_partition: %s", esp_err_to_name(err));
  return err == ESP_OK;
}

void EspOtaSink::abort() {
  if (open_) esp_ota_abort(handle_);
  open_ = false;
}
