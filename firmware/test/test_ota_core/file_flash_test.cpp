// file_flash_test.cpp: the host flash behaves like NOR flash behind esp_ota_*: sequential
// erase, no programming of non-erased bytes, 0xE9 check, boot switch only after finish().
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <vector>

#include "file_flash.h"
#include "file_state_store.h"

using namespace ota_core;
using ota_host::FileFlash;

namespace {

std::string freshDir(const char* name) {
  std::filesystem::path p = std::filesystem::path(OTA_TEST_TMP_DIR) / name;
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p.string();
}

TEST(FileFlash, WritesSequentiallyAndSwitchesTheBootSlotOnlyAfterFinish) {
  FileFlash f(freshDir("seq"), 64 * 1024);
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

TEST(FileFlash, RefusesAnEsp32ImageWithoutMagicButNotAGenericFile) {
  FileFlash f(freshDir("magic"), 64 * 1024);
  uint8_t b[16] = {0x00};
  ASSERT_EQ(f.begin(16, ImageKind::ESP32_APP), SinkResult::OK);
  EXPECT_EQ(f.write(b, 16), SinkResult::IMAGE_INVALID);
  ASSERT_EQ(f.begin(16, ImageKind::GENERIC_FILE), SinkResult::OK);
  EXPECT_EQ(f.write(b, 16), SinkResult::OK);
}

TEST(FileFlash, RefusesToProgramBytesThatAreNotErased) {
  FileFlash f(freshDir("erase"), 64 * 1024);
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

}  // namespace
