// file_flash_test.cpp: the host flash behaves like NOR flash behind esp_ota_*: sequential
// erase, no programming of non-erased bytes, 0xE9 check, bounds, read-back, boot switch only
// after finish(), with its slot bytes in files and in memory alike.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <ostream>
#include <vector>

#include "file_flash.h"
#include "file_state_store.h"

namespace ota_host {
// Names the backing in a failed test's parameter line.
void PrintTo(FlashBacking b, std::ostream* os) { *os << (b == FlashBacking::MEMORY ? "memory" : "file"); }
}  // namespace ota_host

using namespace ota_core;
using ota_host::FileFlash;
using ota_host::FlashBacking;

namespace {

std::string freshDir(const char* name) {
  std::filesystem::path p = std::filesystem::path(OTA_TEST_TMP_DIR) / name;
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p.string();
}

// The flash contract, run against both backings: the memory one must follow every rule the file
// one does (the benchmark's device uses it in place of the file one).
class FlashContract : public ::testing::TestWithParam<FlashBacking> {
 protected:
  FileFlash make(const char* name, uint32_t capacity) {
    std::string dir = std::string(name) + (GetParam() == FlashBacking::MEMORY ? "_mem" : "_file");
    return FileFlash(freshDir(dir.c_str()), capacity, GetParam());
  }
};

std::vector<uint8_t> esp32Image(size_t size, uint8_t fill) {
  std::vector<uint8_t> img(size);
  for (size_t i = 0; i < size; ++i) img[i] = static_cast<uint8_t>(fill + i * 7);
  img[0] = 0xE9;
  return img;
}

TEST_P(FlashContract, WritesSequentiallyAndSwitchesTheBootSlotOnlyAfterFinish) {
  FileFlash f = make("seq", 64 * 1024);
  EXPECT_EQ(f.bootSlot(), 0);
  std::vector<uint8_t> img(10000, 0x5A);
  img[0] = 0xE9;
  ASSERT_EQ(f.begin(static_cast<uint32_t>(img.size()), ImageKind::ESP32_APP), SinkResult::OK);
  ASSERT_EQ(f.write(img.data(), 4096), SinkResult::OK);
  EXPECT_FALSE(f.activate());
  ASSERT_EQ(f.write(img.data() + 4096, img.size() - 4096), SinkResult::OK);
  ASSERT_EQ(f.finish(), SinkResult::OK);
  ASSERT_TRUE(f.activate());
  EXPECT_EQ(f.bootSlot(), 1);
}

TEST_P(FlashContract, RefusesAnEsp32ImageWithoutMagicButNotAGenericFile) {
  FileFlash f = make("magic", 64 * 1024);
  uint8_t b[16] = {0x00};
  ASSERT_EQ(f.begin(16, ImageKind::ESP32_APP), SinkResult::OK);
  EXPECT_EQ(f.write(b, 16), SinkResult::IMAGE_INVALID);
  ASSERT_EQ(f.begin(16, ImageKind::GENERIC_FILE), SinkResult::OK);
  EXPECT_EQ(f.write(b, 16), SinkResult::OK);
}

TEST_P(FlashContract, RefusesToProgramBytesThatAreNotErased) {
  FileFlash f = make("erase", 64 * 1024);
  std::vector<uint8_t> img(8192, 0x11);
  img[0] = 0xE9;
  ASSERT_EQ(f.begin(8192, ImageKind::ESP32_APP), SinkResult::OK);
  ASSERT_EQ(f.write(img.data(), 3000), SinkResult::OK);
  // Resuming mid-sector over bytes already programmed must fail, like real NOR flash.
  ASSERT_EQ(f.resume(1000, 8192, ImageKind::ESP32_APP), SinkResult::OK);
  EXPECT_EQ(f.write(img.data() + 1000, 100), SinkResult::FAILED);
  // Resuming on a sector boundary erases that sector first: fine.
  ASSERT_EQ(f.resume(4096, 8192, ImageKind::ESP32_APP), SinkResult::OK);
  EXPECT_EQ(f.write(img.data() + 4096, 4096), SinkResult::OK);
}

TEST_P(FlashContract, ReadsBackWhatWasWrittenAcrossUnalignedWritesAndAfterFinish) {
  FileFlash f = make("readback", 64 * 1024);
  std::vector<uint8_t> img = esp32Image(20000, 0x30);
  ASSERT_EQ(f.begin(static_cast<uint32_t>(img.size()), ImageKind::ESP32_APP), SinkResult::OK);
  // Writes of odd sizes that cross sector boundaries, as CHUNK payloads of any size do.
  size_t at = 0;
  for (size_t n : {1000u, 3500u, 4096u, 7u, 11397u}) {
    ASSERT_EQ(f.write(img.data() + at, n), SinkResult::OK) << "write at " << at;
    at += n;
  }
  ASSERT_EQ(at, img.size());
  std::vector<uint8_t> back(img.size());
  ASSERT_TRUE(f.read(0, back.data(), back.size()));
  EXPECT_EQ(back, img);
  ASSERT_EQ(f.finish(), SinkResult::OK);
  // After finish (as the receiver rehashes before activate) the slot still reads back.
  std::fill(back.begin(), back.end(), 0);
  ASSERT_TRUE(f.read(4095, back.data(), 2));
  EXPECT_EQ(back[0], img[4095]);
  EXPECT_EQ(back[1], img[4096]);
  EXPECT_EQ(f.writeCalls(), 5u);
}

TEST_P(FlashContract, ErasesASectorOnlyWhenAWriteReachesIt) {
  FileFlash f = make("sectors", 64 * 1024);
  std::vector<uint8_t> img = esp32Image(3 * 4096, 0x40);
  ASSERT_EQ(f.begin(static_cast<uint32_t>(img.size()), ImageKind::ESP32_APP), SinkResult::OK);
  ASSERT_EQ(f.write(img.data(), 100), SinkResult::OK);
  uint8_t b[2] = {};
  // The rest of the first sector is erased; the second was never reached and still holds the
  // new slot's 0x00 (not erased).
  ASSERT_TRUE(f.read(100, b, 1));
  EXPECT_EQ(b[0], 0xFF);
  ASSERT_TRUE(f.read(4096, b, 1));
  EXPECT_EQ(b[0], 0x00);
  ASSERT_EQ(f.write(img.data() + 100, 4000), SinkResult::OK);  // reaches into sector 1
  ASSERT_TRUE(f.read(4100, b, 2));
  EXPECT_EQ(b[0], 0xFF);
  EXPECT_EQ(b[1], 0xFF);
}

TEST_P(FlashContract, RefusesWritesAndReadsOutOfBounds) {
  FileFlash f = make("bounds", 16 * 1024);
  std::vector<uint8_t> img = esp32Image(16 * 1024 + 1, 0x50);
  // An image larger than the slot, and a resume past the image's end.
  EXPECT_EQ(f.begin(16 * 1024 + 1, ImageKind::ESP32_APP), SinkResult::FAILED);
  EXPECT_EQ(f.resume(5000, 4096, ImageKind::ESP32_APP), SinkResult::FAILED);
  ASSERT_EQ(f.begin(8192, ImageKind::ESP32_APP), SinkResult::OK);
  ASSERT_EQ(f.write(img.data(), 8000), SinkResult::OK);
  // Past the announced size: refused, and the position stays where it was.
  EXPECT_EQ(f.write(img.data() + 8000, 193), SinkResult::FAILED);
  EXPECT_EQ(f.finish(), SinkResult::FAILED);
  ASSERT_EQ(f.write(img.data() + 8000, 192), SinkResult::OK);
  uint8_t b[16];
  EXPECT_FALSE(f.read(16 * 1024 - 8, b, 16));
  EXPECT_TRUE(f.read(16 * 1024 - 16, b, 16));
  ASSERT_EQ(f.finish(), SinkResult::OK);
  // Nothing is written after finish.
  EXPECT_EQ(f.write(img.data(), 1), SinkResult::FAILED);
}

TEST_P(FlashContract, FillsASlotThatDoesNotEndOnASectorBoundary) {
  // --slot-size takes any size: the last sector is partly the slot's, and erasing it must touch
  // no byte past the slot's end.
  FileFlash f = make("unaligned", 10000);
  std::vector<uint8_t> img = esp32Image(10000, 0x61);
  ASSERT_EQ(f.begin(10000, ImageKind::ESP32_APP), SinkResult::OK);
  ASSERT_EQ(f.write(img.data(), 10000), SinkResult::OK);
  std::vector<uint8_t> back(10000);
  ASSERT_TRUE(f.read(0, back.data(), back.size()));
  EXPECT_EQ(back, img);
  EXPECT_EQ(f.finish(), SinkResult::OK);
}

TEST_P(FlashContract, AFailedWriteLeavesThePositionAndAbortLeavesTheBootSlot) {
  FileFlash f = make("fail", 64 * 1024);
  std::vector<uint8_t> img = esp32Image(8192, 0x60);
  f.failWrites(2, 1);
  ASSERT_EQ(f.begin(8192, ImageKind::ESP32_APP), SinkResult::OK);
  ASSERT_EQ(f.write(img.data(), 4096), SinkResult::OK);
  EXPECT_EQ(f.write(img.data() + 4096, 4096), SinkResult::FAILED);
  ASSERT_EQ(f.write(img.data() + 4096, 4096), SinkResult::OK);
  f.abort();
  EXPECT_EQ(f.finish(), SinkResult::FAILED);
  EXPECT_FALSE(f.activate());
  EXPECT_EQ(f.bootSlot(), 0);
}

INSTANTIATE_TEST_SUITE_P(Backings, FlashContract,
                         ::testing::Values(FlashBacking::FILE, FlashBacking::MEMORY),
                         [](const ::testing::TestParamInfo<FlashBacking>& info) {
                           return info.param == FlashBacking::MEMORY ? "Memory" : "File";
                         });

TEST(MemoryFlash, WritesNoSlotFile) {
  std::string dir = freshDir("nofile");
  FileFlash f(dir, 64 * 1024, FlashBacking::MEMORY);
  std::vector<uint8_t> img = esp32Image(4096, 0x70);
  ASSERT_EQ(f.begin(4096, ImageKind::ESP32_APP), SinkResult::OK);
  ASSERT_EQ(f.write(img.data(), img.size()), SinkResult::OK);
  EXPECT_FALSE(std::filesystem::exists(f.slotPath(1)));
  EXPECT_FALSE(std::filesystem::exists(f.slotPath(0)));
}

TEST(FileStateStore, SavesLoadsAndClearsAResumePoint) {
  ota_host::FileStateStore s(freshDir("state"));
  ResumePoint p, q;
  EXPECT_FALSE(s.load(q));
  p.sha256[0] = 0xAB;
  p.sha256[31] = 0x01;
  p.offset = 12288;
  p.size = 99999;
  p.kind = ImageKind::GENERIC_FILE;
  std::strcpy(p.product, "blink");
  ASSERT_TRUE(s.save(p));
  ASSERT_TRUE(s.load(q));
  EXPECT_EQ(0, std::memcmp(p.sha256, q.sha256, 32));
  EXPECT_EQ(q.offset, 12288u);
  EXPECT_EQ(q.size, 99999u);
  EXPECT_EQ(q.kind, ImageKind::GENERIC_FILE);
  EXPECT_STREQ(q.product, "blink");
  EXPECT_STREQ(q.version, "");
  s.clear();
  EXPECT_FALSE(s.load(q));
}

TEST(MemoryStateStore, SavesLoadsAndClearsAResumePointInThisProcessOnly) {
  ota_host::MemoryStateStore s;
  ResumePoint p, q;
  EXPECT_FALSE(s.load(q));
  p.offset = 8192;
  p.size = 70000;
  std::strcpy(p.version, "1.2.3");
  ASSERT_TRUE(s.save(p));
  ASSERT_TRUE(s.load(q));
  EXPECT_EQ(q.offset, 8192u);
  EXPECT_EQ(q.size, 70000u);
  EXPECT_STREQ(q.version, "1.2.3");
  s.clear();
  EXPECT_FALSE(s.load(q));
  EXPECT_EQ(ota_host::MemoryStateStore().saves(), 0u);
}

}  // namespace
