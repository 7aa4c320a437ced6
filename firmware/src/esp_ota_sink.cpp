// esp_ota_sink.cpp: see esp_ota_sink.h. Signatures checked against ESP-IDF v5.5.3
// components/app_update/include/esp_ota_ops.h.
#include "esp_ota_sink.h"

#include "esp_log.h"

namespace {
const char* const kTag = "ota_sink";

ota_core::SinkResult toResult(esp_err_t err) {
  if (err == ESP_OK) return ota_core::SinkResult::OK;
  // esp_ota_write: first byte not 0xE9; esp_ota_end: image validation failed.
  if (err == ESP_ERR_OTA_VALIDATE_FAILED) return ota_core::SinkResult::IMAGE_INVALID;
  return ota_core::SinkResult::FAILED;
}
}  // namespace

EspOtaSink::EspOtaSink() : part_(esp_ota_get_next_update_partition(nullptr)) {}

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

ota_core::SinkResult EspOtaSink::resume(uint32_t offset, uint32_t size, ota_core::ImageKind kind) {
  abort();
  if (part_ == nullptr || kind != ota_core::ImageKind::ESP32_APP || size > part_->size) {
    return ota_core::SinkResult::FAILED;
  }
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
  return toResult(err);
}

bool EspOtaSink::read(uint32_t offset, uint8_t* out, size_t size) {
  return part_ != nullptr && esp_partition_read(part_, offset, out, size) == ESP_OK;
}

ota_core::SinkResult EspOtaSink::finish() {
  if (!open_) return ota_core::SinkResult::FAILED;
  open_ = false;  // esp_ota_end frees the handle whatever it returns
  esp_err_t err = esp_ota_end(handle_);
  if (err != ESP_OK) ESP_LOGE(kTag, "esp_ota_end: %s", esp_err_to_name(err));
  return toResult(err);
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
