// receiver_driver.h: the receiver state machine of the firmware core (protocol §8) driven by a
// fuzz input: a receiver on the in-memory fakes of the unit tests is started, answered with a
// valid MANIFEST (so the fuzzer starts in RECEIVING, deep in the table), then fed a sequence of
// records: raw messages on any topic with any correlation, whole or in fragments through the
// Inbox the device's network task fills, well-formed chunks the fuzzer may corrupt, runs of
// in-order chunks, clock steps, power cuts, ERRORs and MANIFESTs. Shared by the libFuzzer target
// (fuzz_receiver.cpp), the seed generator and the regression gtest of the host build.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "fuzz_input.h"
#include "ota_core/receiver.h"

namespace ota_fuzz {

/// Largest image the driver offers; the fake flash holds exactly this much, so a MANIFEST for a
/// larger image is refused by the receiver.
constexpr uint32_t kFuzzFlashBytes = 16384;
/// Largest chunk payload the driven receiver accepts (its reassembly buffer, like a device's).
constexpr uint32_t kFuzzMaxChunkBytes = 1024;

/// Bits of the first header byte.
namespace setup {
constexpr uint8_t kMqtt311 = 0x01;            ///< MQTT 3.1.1: no properties, no correlation check
constexpr uint8_t kAcceptGeneric = 0x02;      ///< the device installs GENERIC_FILE images
constexpr uint8_t kGenericImage = 0x04;       ///< the offered image is a GENERIC_FILE
constexpr uint8_t kStoredResume = 0x08;       ///< half the image in flash, its resume point saved
constexpr uint8_t kPinnedVersion = 0x10;      ///< the device asks for "1.1.0", not the newest
constexpr uint8_t kNoManifest = 0x20;         ///< stay in REQUESTED: no MANIFEST before the records
constexpr uint8_t kSigned = 0x40;             ///< the device requires signed images (fixed key)
constexpr uint8_t kTakeCurrentVersion = 0x80; ///< declineCurrentVersion = false
}  // namespace setup

/// Under setup::kSigned the image is always kSignedImageBytes long: its signature is a constant.
constexpr uint32_t kSignedImageBytes = 4000;

/// Flash faults, bits 2-3 of the chunk size byte of the header.
namespace faults {
constexpr uint8_t kNone = 0;
constexpr uint8_t kWrites235Fail = 1;  ///< writes 2, 3 and 5 fail: NACKs, then recovery
constexpr uint8_t kWrites234Fail = 2;  ///< three failures in a row: FLASH_ERROR
constexpr uint8_t kBadImageHeader = 3; ///< the image does not start with the ESP32 magic byte
}  // namespace faults

/// Header: [setup bits] [image size - 1: u16 mod kFuzzFlashBytes] [chunk size 256 << ((b & 3) % 3),
/// flash faults (b >> 2) & 3] [window - 1: b mod 64]. Then records until the input ends; a record
/// starts with one byte, `op | param << 3`.
enum class Op : uint8_t {
  /// topic (param & 3: data, error, another device's data, our request topic), correlation
  /// ((param >> 2) & 3: ours, none, foreign, too long), param & 16: in fragments of [u8 + 1]
  /// bytes through the device's Inbox (two slots), one of them dropped, repeated or sent from
  /// offset 0, or the message left queued ([u8 glitch], see deliverInFragments); then
  /// [u16 length] and that many message bytes.
  RAW = 0,
  /// [u8 index]: the well-formed CHUNK of that index of the current transfer; param bit 0
  /// corrupts its CRC, bit 1 names another transfer, bit 2 drops the correlation, bit 3 sends a
  /// foreign one.
  CHUNK = 1,
  /// [u8 count]: the sender's next 1 + count % 64 chunks in order; a NACK among the ACKs they
  /// draw rewinds the sender to its nextIndex (go-back-N, protocol §7).
  RUN = 2,
  /// [u16 ms]: the clock moves ms << (param % 16) forward, the inbox is drained, then tick().
  TICK = 3,
  /// start(): "update wanted"; param bit 0 first reboots (a new receiver over the same flash
  /// and state store: a power cut).
  START = 4,
  /// [u8 transfer id] [u8 start chunk] [u8 tweaks]: a fresh MANIFEST answering the last REQUEST;
  /// param bit 0 new transfer id, bit 1 resume at the start chunk, bit 2 the running version,
  /// bit 3 another product, bit 4 another device's ack topic; tweaks bit 0 no correlation, bit 1
  /// a foreign one, bit 2 a wrong SHA-256, bits 3-4 another chunk size (256, 512, or
  /// 2048: larger than the receive buffer).
  MANIFEST = 5,
  /// [u8 code] [u16 retryAfterMs] [u8 flags]: an ERROR; retryAfterMs << (param % 16); flags
  /// bit 0 on the error topic, bit 1 no correlation, bit 2 a foreign one, bit 3 transfer id 0,
  /// bit 4 another transfer id.
  ERROR = 6,
  /// [u32 index] [u32 offset] [u16 length]: a CHUNK of the current transfer with these header
  /// fields and image bytes from `offset`; param bit 0 corrupts the CRC.
  CHUNK_FIELDS = 7,
};

/// Runs one input. Properties checked after the set-up and after every record:
/// - every message the receiver publishes decodes, is a REQUEST on its request topic or an ACK
///   or STATUS on an ack topic of its own namespace (protocol §2);
/// - no ACK names a chunk index beyond the largest image the flash holds;
/// - a saved resume point for the image never claims bytes the flash does not hold;
/// - a STATUS VERIFIED is sent only when the flash holds bytes whose SHA-256 is the one it
///   reports, after the boot slot was switched;
/// - one record draws a bounded number of messages;
/// - once drained, the inbox has a free slot for the next message.
/// Returns nullptr when every property holds, else a sentence naming the broken one; fills
/// `summary` when given.
struct ReceiverRunSummary;
const char* fuzzReceiver(const uint8_t* data, size_t size, ReceiverRunSummary* summary = nullptr);

/// Where a run ended, for the tests of the driver itself.
struct ReceiverRunSummary {
  ota_core::State state = ota_core::State::IDLE;
  uint32_t chunksWritten = 0;
  /// Records read (the set-up not counted).
  uint32_t records = 0;
};

/// Builds receiver inputs record by record (seed corpus, regression tests).
class ReceiverInputBuilder {
 public:
  ReceiverInputBuilder(uint8_t setupBits, uint16_t imageBytes, uint8_t chunkSizeSelector,
                       uint8_t window);
  ReceiverInputBuilder& raw(uint8_t param, const std::vector<uint8_t>& message,
                            uint8_t fragmentBytes = 0, uint8_t glitch = 0);
  ReceiverInputBuilder& chunk(uint8_t index, uint8_t param = 0);
  ReceiverInputBuilder& run(uint8_t count);
  ReceiverInputBuilder& tick(uint16_t ms, uint8_t shift = 0);
  ReceiverInputBuilder& start(bool reboot = false);
  ReceiverInputBuilder& manifest(uint8_t param, uint8_t transferId, uint8_t startChunk,
                                 uint8_t tweaks);
  ReceiverInputBuilder& error(uint8_t code, uint16_t retryAfterMs, uint8_t shift, uint8_t flags);
  ReceiverInputBuilder& chunkFields(uint32_t index, uint32_t offset, uint16_t length,
                                    uint8_t param = 0);
  const std::vector<uint8_t>& data() const { return out_.data(); }

 private:
  ReceiverInputBuilder& op(Op op, uint8_t param) {
    out_.u8(static_cast<uint8_t>(static_cast<uint8_t>(op) | (param << 3)));
    return *this;
  }
  FuzzOutput out_;
};

}  // namespace ota_fuzz
