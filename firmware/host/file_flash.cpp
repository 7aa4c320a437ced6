// file_flash.cpp: see file_flash.h.
#include "file_flash.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "ota_core/limits.h"

namespace ota_host {

using ota_core::ImageKind;
using ota_core::SinkResult;
constexpr uint32_t kSector = ota_core::kFlashSectorBytes;
constexpr uint8_t kEsp32ImageMagic = 0xE9;  // esp_image_header_t.magic, checked by esp_ota_write

FileFlash::FileFlash(std::string dir, uint32_t capacity, FlashBacking backing)
    : dir_(std::move(dir)), capacity_(capacity), backing_(backing) {
  // Both slots up front, like a device's partitions: no allocation (and no page faults) when a
  // transfer begins. A new slot holds old, not erased, contents: 0x00 so that a missing erase
  // shows up.
  if (backing_ == FlashBacking::MEMORY) {
    for (std::vector<uint8_t>& slot : memory_) slot.assign(capacity_, 0x00);
  }
}

FileFlash::~FileFlash() {
  if (file_ != nullptr) std::fclose(file_);
}

std::string FileFlash::slotPath(int slot) const {
  return dir_ + "/slot_" + std::to_string(slot) + ".bin";
}

int FileFlash::bootSlot() const {
  std::FILE* f = std::fopen((dir_ + "/boot").c_str(), "r");
  if (f == nullptr) return 0;
  int slot = 0;
  if (std::fscanf(f, "slot_%d", &slot) != 1 || (slot != 0 && slot != 1)) slot = 0;
  std::fclose(f);
  return slot;
}

SinkResult FileFlash::open(uint32_t offset, uint32_t size, ImageKind kind) {
  if (file_ != nullptr) std::fclose(file_);
  file_ = nullptr;
  open_ = nullptr;
  if (size > capacity_ || offset > size) return SinkResult::FAILED;
  pos_ = offset;
  size_ = size;
  kind_ = kind;
  finished_ = false;
  if (backing_ == FlashBacking::MEMORY) {
    open_ = &memory_[targetSlot()];
    return SinkResult::OK;
  }
  std::string path = slotPath(targetSlot());
  file_ = std::fopen(path.c_str(), "r+b");
  if (file_ == nullptr) {
    // A new slot holds old, not erased, contents: 0x00 so that a missing erase shows up.
    file_ = std::fopen(path.c_str(), "w+b");
    if (file_ == nullptr) return SinkResult::FAILED;
    std::vector<uint8_t> zeros(capacity_, 0x00);
    if (std::fwrite(zeros.data(), 1, zeros.size(), file_) != zeros.size()) return SinkResult::FAILED;
  }
  return SinkResult::OK;
}

SinkResult FileFlash::begin(uint32_t size, ImageKind kind) { return open(0, size, kind); }

SinkResult FileFlash::resume(uint32_t offset, uint32_t size, ImageKind kind) {
  return open(offset, size, kind);
}

namespace {
void spend(uint64_t us, uint64_t& total) {
  if (us == 0) return;
  total += us;
  std::this_thread::sleep_for(std::chrono::microseconds(us));
}
}  // namespace

bool FileFlash::eraseSector(uint32_t sector) {
  static const std::vector<uint8_t> kErased(kSector, 0xFF);
  spend(timing_.eraseSectorUs, modelledUs_);
  if (open_ != nullptr) {
    // A slot need not end on a sector boundary (--slot-size): its last sector is erased up to
    // the slot's end only. Writes never reach past the end (write()'s bounds check).
    const size_t start = static_cast<size_t>(sector) * kSector;
    if (start >= open_->size()) return false;
    std::memset(open_->data() + start, 0xFF, std::min<size_t>(kSector, open_->size() - start));
    return true;
  }
  return std::fseek(file_, static_cast<long>(sector) * kSector, SEEK_SET) == 0 &&
         std::fwrite(kErased.data(), 1, kSector, file_) == kSector;
}

bool FileFlash::erased(uint32_t offset, size_t size) {
  if (open_ != nullptr) {
    const uint8_t* p = open_->data() + offset;
    for (size_t i = 0; i < size; ++i) {
      if (p[i] != 0xFF) return false;
    }
    return true;
  }
  std::vector<uint8_t> old(size);
  if (std::fseek(file_, offset, SEEK_SET) != 0 || std::fread(old.data(), 1, size, file_) != size) {
    return false;
  }
  for (size_t i = 0; i < size; ++i) {
    if (old[i] != 0xFF) return false;
  }
  return true;
}

bool FileFlash::program(uint32_t offset, const uint8_t* data, size_t size) {
  if (open_ != nullptr) {
    std::memcpy(open_->data() + offset, data, size);
    return true;
  }
  bool ok = std::fseek(file_, offset, SEEK_SET) == 0 && std::fwrite(data, 1, size, file_) == size;
  std::fflush(file_);
  return ok;
}

SinkResult FileFlash::write(const uint8_t* data, size_t size) {
  if ((file_ == nullptr && open_ == nullptr) || finished_ || pos_ + size > size_) return SinkResult::FAILED;
  ++writeCalls_;
  if (failFirst_ != 0 && writeCalls_ >= failFirst_ && writeCalls_ < failFirst_ + failCount_) {
    return SinkResult::FAILED;
  }
  if (pos_ == 0 && size > 0 && kind_ == ImageKind::ESP32_APP && data[0] != kEsp32ImageMagic) {
    return SinkResult::IMAGE_INVALID;
  }
  // Erase like esp_ota_write with OTA_WITH_SEQUENTIAL_WRITES: the sector the write starts in if
  // the write starts on its boundary, and every later sector the write reaches.
  uint32_t first = pos_ / kSector;
  uint32_t last = static_cast<uint32_t>((pos_ + size - 1) / kSector);
  for (uint32_t s = (pos_ % kSector == 0 ? first : first + 1); s <= last; ++s) {
    if (!eraseSector(s)) return SinkResult::FAILED;
  }
  // NOR flash can only program erased bytes.
  if (!erased(pos_, size)) return SinkResult::FAILED;
  size_t n = size;
  bool cut = false;
  if (exitAfter_ != 0 && bytesThisProcess_ + size >= exitAfter_) {
    n = static_cast<size_t>(exitAfter_ - bytesThisProcess_);
    cut = true;
  }
  spend(static_cast<uint64_t>(timing_.program4KiBUs) * n / kSector, modelledUs_);
  if (!program(pos_, data, n)) return SinkResult::FAILED;
  if (cut) {
    std::fprintf(stderr, "power cut simulated after %llu bytes\n",
                 static_cast<unsigned long long>(exitAfter_));
    ::_exit(3);
  }
  bytesThisProcess_ += size;
  pos_ += static_cast<uint32_t>(size);
  return SinkResult::OK;
}

bool FileFlash::read(uint32_t offset, uint8_t* out, size_t size) {
  if (backing_ == FlashBacking::MEMORY) {
    const std::vector<uint8_t>& slot = memory_[targetSlot()];
    if (offset > slot.size() || size > slot.size() - offset) return false;
    std::memcpy(out, slot.data() + offset, size);
    return true;
  }
  std::FILE* f = file_ != nullptr ? file_ : std::fopen(slotPath(targetSlot()).c_str(), "rb");
  if (f == nullptr) return false;
  bool ok = std::fseek(f, offset, SEEK_SET) == 0 && std::fread(out, 1, size, f) == size;
  if (f != file_) std::fclose(f);
  return ok;
}

SinkResult FileFlash::finish() {
  if ((file_ == nullptr && open_ == nullptr) || pos_ != size_) return SinkResult::FAILED;
  if (file_ != nullptr) std::fclose(file_);
  file_ = nullptr;
  open_ = nullptr;
  finished_ = true;
  return SinkResult::OK;
}

bool FileFlash::activate() {
  if (!finished_) return false;  // never switch to an image that was not finished
  std::string tmp = dir_ + "/boot.tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr) return false;
  std::fprintf(f, "slot_%d\n", targetSlot());
  std::fclose(f);
  if (std::rename(tmp.c_str(), (dir_ + "/boot").c_str()) != 0) return false;
  // Like esp_ota_set_boot_partition with app rollback enabled: the new image boots on probation
  // (file_boot.h reads this).
  std::FILE* pending = std::fopen((dir_ + "/pending").c_str(), "w");
  if (pending != nullptr) {
    std::fprintf(pending, "slot_%d\n", bootSlot());
    std::fclose(pending);
  }
  finished_ = false;
  ++activations_;
  return true;
}

void FileFlash::abort() {
  if (file_ != nullptr) std::fclose(file_);
  file_ = nullptr;
  open_ = nullptr;
  finished_ = false;
}

}  // namespace ota_host
