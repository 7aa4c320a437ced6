// file_state_store.h: a StateStore over one small text file, replaced atomically (write to a
// temporary file, then rename) so a power cut leaves either the old or the new resume point;
// and MemoryStateStore, the resume point of a device whose flash is in memory (FlashBacking::
// MEMORY): neither outlives the process, so a resume point on disk would point at bytes that
// are gone, and a file replaced per chunk cost the benchmark's device more than the rest of its
// work (a rename, an open, a write and a close per 4 KiB).
#pragma once

#include <string>

#include "ota_core/platform.h"

namespace ota_host {

/// See file header. The file is `<dir>/resume.txt`.
class FileStateStore : public ota_core::StateStore {
 public:
  explicit FileStateStore(std::string dir) : path_(std::move(dir) + "/resume.txt") {}
  bool load(ota_core::ResumePoint& out) override;
  bool save(const ota_core::ResumePoint& point) override;
  void clear() override;
  uint32_t saves() const { return saves_; }

 private:
  std::string path_;
  uint32_t saves_ = 0;
};

/// See file header: the last saved point, in this process only.
class MemoryStateStore : public ota_core::StateStore {
 public:
  bool load(ota_core::ResumePoint& out) override {
    if (!have_) return false;
    out = point_;
    return true;
  }
  bool save(const ota_core::ResumePoint& point) override {
    point_ = point;
    have_ = true;
    ++saves_;
    return true;
  }
  void clear() override { have_ = false; }
  uint32_t saves() const { return saves_; }

 private:
  ota_core::ResumePoint point_;
  bool have_ = false;
  uint32_t saves_ = 0;
};

}  // namespace ota_host
