// file_state_store.h: a StateStore over one small text file, replaced atomically (write to a
// temporary file, then rename) so a power cut leaves either the old or the new resume point.
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

}  // namespace ota_host
