// esp_boot_control.cpp: see esp_boot_control.h. Semantics from ESP-IDF v5.5.3
// components/app_update/esp_ota_ops.c.
#include "esp_boot_control.h"

#include "esp_log.h"
#include "esp_ota_ops.h"

namespace {
const char* const kTag = "ota_boot";
}  // namespace

bool EspBootControl::pendingVerify() {
  esp_ota_img_states_t state = ESP_OTA_IMG_UNDEFINED;
  return esp_ota_get_state_partition(esp_ota_get_running_partition(), &state) == ESP_OK &&
         state == ESP_OTA_IMG_PENDING_VERIFY;
}

const char* EspBootControl::runningSlot() { return esp_ota_get_running_partition()->label; }

bool EspBootControl::markValid() {
  esp_err_t err = esp_ota_mark_app_valid_cancel_rollback();
  if (err != ESP_OK) ESP_LOGE(kTag, "esp_ota_mark_app_valid_cancel_rollback: %s", esp_err_to_name(err));
  return err == ESP_OK;
}

bool EspBootControl::rollback() {
  // esp_ota_current_ota_is_workable(false) (esp_ota_ops.c) returns ESP_ERR_OTA_ROLLBACK_FAILED
  // when no other slot holds a valid image, and esp_ota_mark_app_invalid_rollback_and_reboot
  // then returns without restarting: the caller must keep running.
  esp_err_t err = esp_ota_mark_app_invalid_rollback_and_reboot();
  ESP_LOGE(kTag, "cannot roll back (%s): keeping this image", esp_err_to_name(err));
  return false;
}
