// esp_boot_control.h: ota_core::BootControl over the ESP-IDF app rollback API
// (CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE): probation state, mark valid, roll back.
#pragma once

#include "ota_core/self_test.h"

/// See file header.
class EspBootControl : public ota_core::BootControl {
 public:
  bool pendingVerify() override;
  const char* runningSlot() override;
  bool markValid() override;
  /// Returns only when esp_ota_mark_app_invalid_rollback_and_reboot() failed.
  bool rollback() override;
};
