// receiver_input.cpp: ReceiverInputBuilder, the writer of the record layout receiver_driver.h
// documents (kept apart from the driver so the seed generator needs no core library).
#include "receiver_driver.h"

namespace ota_fuzz {

ReceiverInputBuilder::ReceiverInputBuilder(uint8_t setupBits, uint16_t imageBytes,
                                           uint8_t chunkSizeSelector, uint8_t window) {
  out_.u8(setupBits).u16(static_cast<uint16_t>(imageBytes - 1)).u8(chunkSizeSelector);
  out_.u8(static_cast<uint8_t>(window - 1));
}

ReceiverInputBuilder& ReceiverInputBuilder::raw(uint8_t param, const std::vector<uint8_t>& message,
                                                uint8_t fragmentBytes, uint8_t glitch) {
  op(Op::RAW, static_cast<uint8_t>(param | (fragmentBytes != 0 ? 16 : 0)));
  if (fragmentBytes != 0) out_.u8(static_cast<uint8_t>(fragmentBytes - 1)).u8(glitch);
  out_.u16(static_cast<uint16_t>(message.size())).bytes(message);
  return *this;
}

ReceiverInputBuilder& ReceiverInputBuilder::chunk(uint8_t index, uint8_t param) {
  op(Op::CHUNK, param).out_.u8(index);
  return *this;
}

ReceiverInputBuilder& ReceiverInputBuilder::run(uint8_t count) {
  op(Op::RUN, 0).out_.u8(static_cast<uint8_t>(count - 1));
  return *this;
}

ReceiverInputBuilder& ReceiverInputBuilder::tick(uint16_t ms, uint8_t shift) {
  op(Op::TICK, shift).out_.u16(ms);
  return *this;
}

ReceiverInputBuilder& ReceiverInputBuilder::start(bool reboot) {
  return op(Op::START, reboot ? 1 : 0);
}

ReceiverInputBuilder& ReceiverInputBuilder::manifest(uint8_t param, uint8_t transferId,
                                                     uint8_t startChunk, uint8_t tweaks) {
  op(Op::MANIFEST, param).out_.u8(transferId).u8(startChunk).u8(tweaks);
  return *this;
}

ReceiverInputBuilder& ReceiverInputBuilder::error(uint8_t code, uint16_t retryAfterMs,
                                                  uint8_t shift, uint8_t flags) {
  op(Op::ERROR, shift).out_.u8(static_cast<uint8_t>(code - 1)).u16(retryAfterMs).u8(flags);
  return *this;
}

ReceiverInputBuilder& ReceiverInputBuilder::chunkFields(uint32_t index, uint32_t offset,
                                                        uint16_t length, uint8_t param) {
  op(Op::CHUNK_FIELDS, param).out_.u32(index).u32(offset).u16(length);
  return *this;
}

}  // namespace ota_fuzz
