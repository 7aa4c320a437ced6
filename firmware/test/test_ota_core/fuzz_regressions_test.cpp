// fuzz_regressions_test.cpp: every input a fuzz target of firmware/fuzz failed on is kept in
// firmware/test/fuzz_regressions/ and replayed here through the same driver, so the normal host
// build (g++, no libFuzzer) keeps each bug fixed. A file is named `<target>-<what it found>.hex`
// (target: codec or receiver) and holds the input as hex; whitespace is ignored and lines
// starting with `#` say what the input found. Also checks that the drivers still reach what the
// fuzzer relies on (a whole transfer, every golden vector).
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "codec_driver.h"
#include "json_mini.h"
#include "receiver_driver.h"

namespace fs = std::filesystem;
using ota_fuzz::ReceiverInputBuilder;
using ota_fuzz::ReceiverRunSummary;

namespace {

std::vector<std::string> regressionFiles() {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(OTA_FUZZ_REGRESSIONS_DIR)) {
    if (entry.path().extension() == ".hex") names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

/// The bytes of a regression file: hex digits, whitespace and `#` comment lines.
std::vector<uint8_t> readHexFile(const std::string& path) {
  std::ifstream f(path);
  std::string line, digits;
  while (std::getline(f, line)) {
    if (!line.empty() && line[0] == '#') continue;
    for (char c : line) {
      if (!std::isspace(static_cast<unsigned char>(c))) digits += c;
    }
  }
  return json_mini::hex(digits);
}

class FuzzRegression : public ::testing::TestWithParam<std::string> {};

TEST_P(FuzzRegression, InputNoLongerBreaksAProperty) {
  const std::string& name = GetParam();
  std::vector<uint8_t> input = readHexFile(std::string(OTA_FUZZ_REGRESSIONS_DIR) + "/" + name);
  const char* broken = nullptr;
  if (name.rfind("codec-", 0) == 0) {
    broken = ota_fuzz::fuzzCodec(input.data(), input.size());
  } else if (name.rfind("receiver-", 0) == 0) {
    broken = ota_fuzz::fuzzReceiver(input.data(), input.size());
  } else {
    FAIL() << "Cannot tell the fuzz target of '" << name
           << "': name it codec-<what>.hex or receiver-<what>.hex";
  }
  EXPECT_EQ(broken, nullptr) << name << ": " << broken;
}

std::string testName(const ::testing::TestParamInfo<std::string>& info) {
  std::string out;
  for (char c : info.param.substr(0, info.param.size() - 4)) {
    out += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Inputs, FuzzRegression, ::testing::ValuesIn(regressionFiles()), testName);

TEST(FuzzDrivers, ReceiverDriverCompletesAWholeTransfer) {
  // 10 000 bytes in 1024-byte chunks: the RUN record must carry the receiver to VERIFIED, or the
  // fuzzer would never reach the end of a transfer.
  std::vector<uint8_t> input = ReceiverInputBuilder(0, 10000, 2, 8).run(64).data();
  ReceiverRunSummary summary;
  EXPECT_EQ(ota_fuzz::fuzzReceiver(input.data(), input.size(), &summary), nullptr);
  EXPECT_EQ(summary.state, ota_core::State::VERIFIED);
  EXPECT_EQ(summary.chunksWritten, 10u);
}

TEST(FuzzDrivers, ReceiverDriverResumesAStoredImageAndFinishesIt) {
  std::vector<uint8_t> input =
      ReceiverInputBuilder(ota_fuzz::setup::kStoredResume, 16000, 0, 16).run(64).data();
  ReceiverRunSummary summary;
  EXPECT_EQ(ota_fuzz::fuzzReceiver(input.data(), input.size(), &summary), nullptr);
  EXPECT_EQ(summary.state, ota_core::State::VERIFIED);
  EXPECT_EQ(summary.chunksWritten, (16000u - 4096u + 255u) / 256u);  // resumed at one sector
}

TEST(FuzzDrivers, ReceiverDriverResumesAfterAPowerCut) {
  // Five 1024-byte chunks written, then a reboot: the new receiver resumes at the sector below
  // (4096), is answered from there and writes the last six of ten chunks.
  std::vector<uint8_t> input =
      ReceiverInputBuilder(0, 10000, 2, 8).run(5).start(true).manifest(2, 0, 4, 0).run(64).data();
  ReceiverRunSummary summary;
  EXPECT_EQ(ota_fuzz::fuzzReceiver(input.data(), input.size(), &summary), nullptr);
  EXPECT_EQ(summary.state, ota_core::State::VERIFIED);
  EXPECT_EQ(summary.chunksWritten, 6u);
}

TEST(FuzzDrivers, ReceiverDriverDeliversASignedImageToADeviceThatRequiresSignatures) {
  std::vector<uint8_t> input = ReceiverInputBuilder(ota_fuzz::setup::kSigned, 1, 0, 8).run(64)
                                   .data();
  ReceiverRunSummary summary;
  EXPECT_EQ(ota_fuzz::fuzzReceiver(input.data(), input.size(), &summary), nullptr);
  EXPECT_EQ(summary.state, ota_core::State::VERIFIED);
  EXPECT_EQ(summary.chunksWritten, (ota_fuzz::kSignedImageBytes + 255) / 256);
}

TEST(FuzzDrivers, ReceiverDriverFlashFaultsEndInFlashErrorOrInvalidImage) {
  for (uint8_t fault : {ota_fuzz::faults::kWrites234Fail, ota_fuzz::faults::kBadImageHeader}) {
    std::vector<uint8_t> input =
        ReceiverInputBuilder(0, 10000, static_cast<uint8_t>(2 | fault << 2), 8).run(64).data();
    ReceiverRunSummary summary;
    EXPECT_EQ(ota_fuzz::fuzzReceiver(input.data(), input.size(), &summary), nullptr);
    EXPECT_EQ(summary.state, ota_core::State::FAILED) << "fault " << int(fault);
  }
}

TEST(FuzzDrivers, ReceiverDriverFillsTheInboxAndTheTransferStillCompletes) {
  // Two messages left queued fill both slots, the third is dropped; a clock step drains the
  // inbox, and the transfer then completes.
  std::vector<uint8_t> input = ReceiverInputBuilder(0, 10000, 2, 8)
                                   .raw(0, {1, 2, 3}, 2, 0x40)
                                   .raw(0, {4, 5, 6}, 2, 0x40)
                                   .raw(0, {7, 8, 9}, 2)
                                   .tick(1)
                                   .run(64)
                                   .data();
  ReceiverRunSummary summary;
  EXPECT_EQ(ota_fuzz::fuzzReceiver(input.data(), input.size(), &summary), nullptr);
  EXPECT_EQ(summary.state, ota_core::State::VERIFIED);
}

TEST(FuzzDrivers, ReceiverDriverBacksOffOnBusyAndAsksAgain) {
  std::vector<uint8_t> input = ReceiverInputBuilder(ota_fuzz::setup::kNoManifest, 10000, 2, 8)
                                   .error(5, 500, 0, 0)
                                   .data();
  ReceiverRunSummary summary;
  EXPECT_EQ(ota_fuzz::fuzzReceiver(input.data(), input.size(), &summary), nullptr);
  EXPECT_EQ(summary.state, ota_core::State::BACKING_OFF);
}

TEST(FuzzDrivers, CodecDriverHoldsForEveryGoldenVector) {
  for (const char* file : {"request", "manifest", "error", "chunk", "ack", "status", "offer"}) {
    json_mini::Value doc =
        json_mini::parseFile(std::string(OTA_VECTORS_DIR) + "/" + file + ".json");
    for (const json_mini::Value& v : doc["vectors"].array) {
      if (!v.has("hex")) continue;
      for (uint8_t kind = 0; kind < 6; ++kind) {
        std::vector<uint8_t> input{kind};
        std::vector<uint8_t> msg = json_mini::hex(v["hex"].string);
        input.insert(input.end(), msg.begin(), msg.end());
        const char* broken = ota_fuzz::fuzzCodec(input.data(), input.size());
        EXPECT_EQ(broken, nullptr) << v["name"].string << ": " << broken;
      }
    }
  }
}

}  // namespace
