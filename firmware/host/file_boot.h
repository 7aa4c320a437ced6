// file_boot.h: the host's model of the ESP32's app rollback (ota_core::BootControl) and of the
// NVS boot record (ota_core::BootStore), next to FileFlash's slot files in the same folder:
//   boot         the slot that boots ("slot_0" / "slot_1"; FileFlash::activate writes it)
//   pending      the slot on probation: FileFlash::activate writes it like
//                esp_ota_set_boot_partition leaves the new image to boot as PENDING_VERIFY
//   bootrec.bin  the boot record
//   invalid_<slot>  a slot that holds no bootable image (a rollback marks the slot it leaves;
//                a test can mark one to model "nothing to roll back to")
// One run of ota-receiver-host is one boot: a rollback switches `boot` back and the process
// exits, the next run is the reboot.
#pragma once

#include <string>

#include "file_flash.h"
#include "ota_core/self_test.h"

namespace ota_host {

/// See file header.
class FileBootControl : public ota_core::BootControl {
 public:
  explicit FileBootControl(FileFlash& flash, std::string dir)
      : flash_(flash), dir_(std::move(dir)) {}
  bool pendingVerify() override;
  const char* runningSlot() override;
  bool markValid() override;
  /// Marks the running slot invalid and switches `boot` to the other one, unless that one is
  /// marked invalid: then false, like ESP_ERR_OTA_ROLLBACK_FAILED.
  bool rollback() override;

 private:
  FileFlash& flash_;
  std::string dir_;
  std::string running_;
};

/// The boot record as a file (written whole through a temporary file and a rename).
class FileBootStore : public ota_core::BootStore {
 public:
  explicit FileBootStore(std::string dir) : path_(std::move(dir) + "/bootrec.bin") {}
  bool loadBootRecord(ota_core::BootRecord& out) override;
  bool saveBootRecord(const ota_core::BootRecord& record) override;
  void clearBootRecord() override;

 private:
  std::string path_;
};

}  // namespace ota_host
