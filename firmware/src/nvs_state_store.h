// nvs_state_store.h: StateStore over NVS (namespace "ota"), plus the boot record that lets the
// next boot tell BOOTED from ROLLED_BACK.
#pragma once

#include <cstdint>

#include "ota_core/platform.h"

/// What the device activated before its restart: reported as BOOTED or ROLLED_BACK afterwards.
struct BootRecord {
  uint8_t sha256[ota_core::kSha256Bytes];
  char version[ota_core::kMaxVersionBytes + 1];
  /// Label of the partition that was made the boot partition ("ota_0" / "ota_1").
  char label[17];
};

/// The resume point is one blob written when a new image starts plus a u32 offset rewritten after
/// every chunk (NVS appends a 32-byte entry per write; its pages wear-level).
class NvsStateStore : public ota_core::StateStore {
 public:
  bool load(ota_core::ResumePoint& out) override;
  bool save(const ota_core::ResumePoint& point) override;
  void clear() override;

  static bool saveBootRecord(const BootRecord& record);
  static bool loadBootRecord(BootRecord& out);
  static void clearBootRecord();

 private:
  ota_core::ResumePoint cached_{};
  bool cachedValid_ = false;
};
