// make_seeds.cpp: writes the seed corpus of both fuzz targets from the golden vectors
// (tests/vectors/*.json), at build time, so that no corpus is committed.
//   make_seeds <vectors dir> <output dir>   -> <output>/codec/*, <output>/receiver/*
// Codec seeds: every vector message behind the topic-kind byte of each topic that carries its
// type, and every topic of topics.json. Receiver seeds: structure-aware record sequences (see
// receiver_driver.h): a whole transfer, each vector message delivered mid-transfer (whole and
// in fragments), duplicates, gaps and corrupt chunks, BUSY and transfer errors, timeouts, a
// resume, MQTT 3.1.1.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "json_mini.h"
#include "receiver_driver.h"

namespace fs = std::filesystem;
using json_mini::Value;
using ota_fuzz::ReceiverInputBuilder;

namespace {

/// Topic-kind bytes of codec_driver (REQUEST, DATA, ACK, STATUS, ERROR, OFFER) that carry each
/// file's message type.
std::vector<uint8_t> kindsOf(const std::string& file) {
  if (file == "request") return {0};
  if (file == "manifest" || file == "chunk") return {1};
  if (file == "error") return {1, 4};
  if (file == "ack") return {2};
  if (file == "offer") return {5};
  return {2, 3};  // status
}

std::vector<uint8_t> messageBytes(const Value& v) {
  if (v.has("hex")) return json_mini::hex(v["hex"].string);
  std::vector<uint8_t> out = json_mini::hex(v["hexHeader"].string);
  out.insert(out.end(), v["payloadFill"]["count"].u64(),
             static_cast<uint8_t>(v["payloadFill"]["byte"].u64()));
  return out;
}

void write(const fs::path& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw std::runtime_error("cannot write " + path.string());
}

/// A 10 000-byte image in 1024-byte chunks (selector 2), window 8: ten chunks.
ReceiverInputBuilder transfer(uint8_t bits = 0) { return ReceiverInputBuilder(bits, 10000, 2, 8); }

size_t receiverSeeds(const fs::path& dir, const std::vector<std::vector<uint8_t>>& messages) {
  std::vector<std::pair<std::string, std::vector<uint8_t>>> seeds = {
      {"whole-transfer", transfer().run(64).data()},
      {"in-steps", transfer().run(3).tick(20).run(3).tick(20).run(64).data()},
      {"duplicates-gaps-corrupt",
       transfer().chunk(0).chunk(0).chunk(2).chunk(1, 1).chunk(1).tick(20).run(64).data()},
      {"other-transfer-and-correlation",
       transfer().chunk(0, 2).chunk(0, 8).chunk(0, 4).run(64).data()},
      {"busy-then-retry",
       transfer(ota_fuzz::setup::kNoManifest).error(5, 500, 0, 0).tick(600).manifest(0, 0, 0, 0)
           .run(64).data()},
      {"transfer-aborted-resume",
       transfer().run(4).error(6, 100, 0, 0).tick(200).manifest(3, 9, 4, 0).run(64).data()},
      {"idle-timeout-rerequest",
       transfer().run(2).tick(10000).manifest(2, 0, 2, 0).run(64).data()},
      {"request-timeouts", transfer(ota_fuzz::setup::kNoManifest).tick(10000).tick(10000)
           .tick(10000).tick(10000).start().data()},
      {"up-to-date", transfer(ota_fuzz::setup::kNoManifest).error(11, 0, 0, 0).start().data()},
      {"running-version", transfer(ota_fuzz::setup::kNoManifest).manifest(4, 0, 0, 0).data()},
      {"wrong-sha", transfer(ota_fuzz::setup::kNoManifest).manifest(0, 0, 0, 4).run(64).data()},
      {"stored-resume", ReceiverInputBuilder(ota_fuzz::setup::kStoredResume, 16000, 0, 16)
           .run(64).run(64).data()},
      {"power-cut-resume", transfer().run(5).start(true).manifest(2, 0, 4, 0).run(64).data()},
      {"chunk-size-change",
       transfer().run(3).error(6, 100, 0, 0).tick(200).manifest(2, 0, 4, 8).run(64).data()},
      {"mqtt311", transfer(ota_fuzz::setup::kMqtt311).run(64).data()},
      {"flaky-flash", ReceiverInputBuilder(0, 10000, 2 | ota_fuzz::faults::kWrites235Fail << 2, 8)
           .run(64).run(64).tick(20).data()},
      {"broken-flash", ReceiverInputBuilder(0, 10000, 2 | ota_fuzz::faults::kWrites234Fail << 2, 8)
           .run(64).data()},
      {"bad-image-header",
       ReceiverInputBuilder(0, 10000, 2 | ota_fuzz::faults::kBadImageHeader << 2, 8).run(64)
           .data()},
      {"signed", transfer(ota_fuzz::setup::kSigned).run(64).data()},
      {"signed-wrong-sha", transfer(ota_fuzz::setup::kSigned | ota_fuzz::setup::kNoManifest)
           .manifest(0, 0, 0, 4).data()},
      {"generic-file", transfer(ota_fuzz::setup::kGenericImage | ota_fuzz::setup::kAcceptGeneric)
           .run(64).data()},
      {"inbox-full", transfer().raw(0, {1, 2, 3}, 2, 0x40).raw(0, {4, 5, 6}, 2, 0x40)
           .raw(0, {7, 8, 9}, 2).tick(1).run(64).data()},
      {"chunk-fields", transfer().chunkFields(0, 0, 1024).chunkFields(1, 1000, 1024)
           .chunkFields(9, 9216, 784).chunkFields(0xFFFFFFFF, 0xFFFFFC00, 1024).data()},
  };
  size_t n = 0;
  for (auto& [name, bytes] : seeds) {
    write(dir / name, bytes);
    ++n;
  }
  // Each vector message mid-transfer on the data topic: whole, then in 7-byte fragments.
  for (size_t i = 0; i < messages.size(); ++i) {
    write(dir / ("vector-" + std::to_string(i)),
          transfer().run(2).raw(0, messages[i]).run(64).data());
    write(dir / ("vector-fragments-" + std::to_string(i)),
          transfer().run(2).raw(0, messages[i], 7).run(64).data());
    // A piece lost, repeated, or resent from offset 0 (glitch bits 4-5) at the second piece.
    write(dir / ("vector-fragments-glitch-" + std::to_string(i)),
          transfer().run(2).raw(0, messages[i], 7, static_cast<uint8_t>(1 | (1 + i % 3) << 4))
              .run(64).data());
    n += 3;
  }
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "Usage: make_seeds <vectors dir> <output dir>\n");
    return 2;
  }
  try {
    fs::path vectors = argv[1];
    fs::path out = argv[2];
    fs::create_directories(out / "codec");
    fs::create_directories(out / "receiver");
    std::vector<std::vector<uint8_t>> messages;
    size_t codec = 0;
    for (const char* file : {"request", "manifest", "error", "chunk", "ack", "status", "offer"}) {
      Value doc = json_mini::parseFile((vectors / (std::string(file) + ".json")).string());
      const Value& vs = doc["vectors"];
      for (size_t i = 0; i < vs.array.size(); ++i) {
        std::vector<uint8_t> msg = messageBytes(vs.array[i]);
        for (uint8_t kind : kindsOf(file)) {
          std::vector<uint8_t> seed{kind};
          seed.insert(seed.end(), msg.begin(), msg.end());
          write(out / "codec" / (std::string(file) + "-" + std::to_string(i) + "-" +
                                 std::to_string(kind)),
                seed);
          ++codec;
        }
        if (msg.size() < 4096) messages.push_back(msg);
      }
    }
    Value topics = json_mini::parseFile((vectors / "topics.json").string());
    for (const char* section : {"build", "parse"}) {
      if (!topics.has(section)) continue;
      const Value& list = topics[section];
      for (size_t i = 0; i < list.array.size(); ++i) {
        if (!list.array[i].has("topic")) continue;
        const std::string& t = list.array[i]["topic"].string;
        std::vector<uint8_t> seed{1};
        seed.insert(seed.end(), t.begin(), t.end());
        write(out / "codec" / ("topic-" + std::string(section) + "-" + std::to_string(i)), seed);
        ++codec;
      }
    }
    size_t receiver = receiverSeeds(out / "receiver", messages);
    std::printf("make_seeds: %zu codec seeds, %zu receiver seeds in %s\n", codec, receiver,
                out.string().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
