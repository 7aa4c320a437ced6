// file_flash.h: a FlashSink over files that behaves like the ESP32's NOR flash and esp_ota_*:
// two slot files (slot_0.bin, slot_1.bin) of a fixed capacity, 4 KiB sectors erased on demand
// the way esp_ota_write erases with OTA_WITH_SEQUENTIAL_WRITES, writing into a byte that is not
// erased is an error, the first byte of an ESP32 application image must be 0xE9, and the "boot
// slot" (file `boot`) changes only in activate() after finish(). Fault injection for tests:
// fail write call N, or cut the power (exit(3)) after N bytes.
//
// The slot bytes live in the slot files (FlashBacking::FILE, the default: they survive the
// process, so a power cut and a resume can be tested) or in this process's memory
// (FlashBacking::MEMORY: the same erase, program, read-back and bounds rules, without a file
// system call per write; the benchmark's device, whose throughput the file system would
// otherwise bound). The boot selection (`boot`, `pending`) is a file with either backing.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "ota_core/platform.h"

namespace ota_host {

/// Time the flash takes; zero = as fast as the file system.
struct FlashTiming {
  /// Erasing one 4 KiB sector.
  uint32_t eraseSectorUs = 0;
  /// Programming 4 KiB (proportionally less for smaller writes).
  uint32_t program4KiBUs = 0;
  /// Typical ESP32 module flash: 45 ms per sector erase, 10 ms per 4 KiB programmed.
  static FlashTiming esp32() { return FlashTiming{45000, 10000}; }
};

/// Where the slot bytes live; see file header.
enum class FlashBacking { FILE, MEMORY };

/// See file header.
class FileFlash : public ota_core::FlashSink {
 public:
  /// `dir` must exist. `capacity` is the size of each slot.
  FileFlash(std::string dir, uint32_t capacity, FlashBacking backing = FlashBacking::FILE);
  ~FileFlash() override;

  uint32_t capacity() const override { return capacity_; }
  ota_core::SinkResult begin(uint32_t size, ota_core::ImageKind kind) override;
  ota_core::SinkResult resume(uint32_t offset, uint32_t size, ota_core::ImageKind kind) override;
  ota_core::SinkResult write(const uint8_t* data, size_t size) override;
  bool read(uint32_t offset, uint8_t* out, size_t size) override;
  ota_core::SinkResult finish() override;
  bool activate() override;
  void abort() override;

  /// Slot that boots now (0 when no `boot` file exists) and the one updates are written to.
  int bootSlot() const;
  int targetSlot() const { return 1 - bootSlot(); }
  std::string slotPath(int slot) const;
  /// Fault injection: write calls number `first`..`first+count-1` (1-based) fail.
  void failWrites(uint32_t first, uint32_t count) {
    failFirst_ = first;
    failCount_ = count;
  }
  /// Power cut: after `bytes` image bytes written by this process, the process _exit(3)s
  /// (in the middle of a chunk when `bytes` is not on a chunk boundary).
  void exitAfterBytes(uint64_t bytes) { exitAfter_ = bytes; }
  /// Makes erases and writes take the time of a real flash.
  void setTiming(const FlashTiming& timing) { timing_ = timing; }
  uint32_t writeCalls() const { return writeCalls_; }
  /// Microseconds the timing model slept so far (erase + program).
  uint64_t modelledUs() const { return modelledUs_; }
  uint32_t activations() const { return activations_; }

 private:
  ota_core::SinkResult open(uint32_t offset, uint32_t size, ota_core::ImageKind kind);
  bool eraseSector(uint32_t sector);
  /// The open slot's bytes [offset, offset + size) are all erased (0xFF).
  bool erased(uint32_t offset, size_t size);
  bool program(uint32_t offset, const uint8_t* data, size_t size);

  std::string dir_;
  uint32_t capacity_;
  FlashBacking backing_;
  /// MEMORY: each slot's bytes, made by the constructor (0x00, like a new slot file).
  std::vector<uint8_t> memory_[2];
  /// MEMORY: the slot open for writing, or nullptr.
  std::vector<uint8_t>* open_ = nullptr;
  std::FILE* file_ = nullptr;
  uint32_t pos_ = 0;
  uint32_t size_ = 0;
  ota_core::ImageKind kind_ = ota_core::ImageKind::ESP32_APP;
  bool finished_ = false;
  uint32_t writeCalls_ = 0;
  uint32_t failFirst_ = 0;
  uint32_t failCount_ = 0;
  uint64_t exitAfter_ = 0;
  uint64_t bytesThisProcess_ = 0;
  uint32_t activations_ = 0;
  FlashTiming timing_;
  uint64_t modelledUs_ = 0;
};

}  // namespace ota_host
