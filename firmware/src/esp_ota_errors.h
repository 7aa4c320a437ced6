// esp_ota_errors.h: what the chunk sink (esp_ota_sink.cpp) and the HTTP download
// (http_download.cpp) share about esp_ota_* (ESP-IDF v5.5.3 components/app_update/esp_ota_ops.c,
// components/esp_https_ota/src/esp_https_ota.c): the error-to-result mapping and the checks
// esp_ota_resume() leaves out.
#pragma once

#include "esp_err.h"
#include "esp_log.h"
#include "esp_ota_ops.h"
#include "ota_core/platform.h"

/// The sink result of an esp_ota_* error (also of a non-transport esp_https_ota_* error, which
/// passes the esp_ota_* error through).
inline ota_core::SinkResult otaErrorToResult(esp_err_t err) {
  if (err == ESP_OK) return ota_core::SinkResult::OK;
  // esp_ota_write: first byte not 0xE9; esp_ota_end: image validation failed.
  // ESP_ERR_INVALID_VERSION: esp_https_ota_perform's esp_ota_verify_chip_id /
  // esp_ota_verify_chip_revision refuse the image header (another chip, or a newer revision).
  if (err == ESP_ERR_OTA_VALIDATE_FAILED || err == ESP_ERR_INVALID_VERSION) {
    return ota_core::SinkResult::IMAGE_INVALID;
  }
  return ota_core::SinkResult::FAILED;
}

/// The two checks esp_ota_begin() makes (esp_ota_ops.c) and esp_ota_resume() does not, to run
/// before any resume into the next update partition: refuse (ESP_ERR_OTA_ROLLBACK_INVALID_STATE,
/// what esp_ota_begin returns) while the running image is PENDING_VERIFY, and invalidate the
/// otadata slot of the partition about to be overwritten. ESP_OK when the resume may go on.
inline esp_err_t otaResumeGuard(const char* tag) {
#if CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE
  esp_ota_img_states_t running = ESP_OTA_IMG_UNDEFINED;
  if (esp_ota_get_state_partition(esp_ota_get_running_partition(), &running) == ESP_OK &&
      running == ESP_OTA_IMG_PENDING_VERIFY) {
    ESP_LOGE(tag, "not resuming: the running image is still pending verification");
    return ESP_ERR_OTA_ROLLBACK_INVALID_STATE;
  }
  // esp_ota_begin ignores this result, and so does this: erase_last_boot_app_partition returns
  // ESP_FAIL when there is nothing to invalidate (the inactive otadata slot already blank, as
  // after an earlier begin or resume, or its app being the running one), which must not stop
  // a resume.
  esp_err_t invalidated = esp_ota_invalidate_inactive_ota_data_slot();
  if (invalidated != ESP_OK) {
    ESP_LOGD(tag, "esp_ota_invalidate_inactive_ota_data_slot: %s", esp_err_to_name(invalidated));
  }
#else
  (void)tag;
#endif
  return ESP_OK;
}
