// nvs_state_store.h: the two records the receiver keeps in NVS (namespace "ota"): the resume
// record (ota_core::ResumeRecord: SHA-256, offset, size, version and target partition in one
// blob, so one nvs_set_blob + nvs_commit replaces it atomically) and the boot record that lets
// the next boot tell BOOTED from ROLLED_BACK. When to write the resume record (once per flash
// sector, never for another slot) is decided by ota_core::ResumeRecordStore; this file only
// stores and loads.
#pragma once

#include "ota_core/resume_store.h"
#include "ota_core/self_test.h"

/// One NVS blob holding the resume record.
class NvsRecordStore : public ota_core::RecordStore {
 public:
  bool read(ota_core::ResumeRecord& out) override;
  bool write(const ota_core::ResumeRecord& record) override;
  void erase() override;
};

/// One NVS blob holding the boot record.
class NvsBootStore : public ota_core::BootStore {
 public:
  bool loadBootRecord(ota_core::BootRecord& out) override;
  bool saveBootRecord(const ota_core::BootRecord& record) override;
  void clearBootRecord() override;
};
