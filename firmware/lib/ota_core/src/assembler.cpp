// assembler.cpp: fragment reassembly (see assembler.h for why it exists).
#include "ota_core/assembler.h"

#include <cstring>

namespace ota_core {
namespace {

/// Copies at most `cap` bytes of `src` into `dst`; returns the view and whether it was cut.
Bytes keep(Bytes src, uint8_t* dst, size_t cap, bool& cut) {
  cut = src.size > cap;
  Bytes out;
  out.size = cut ? cap : src.size;
  out.data = dst;
  if (out.size != 0) std::memcpy(dst, src.data, out.size);
  return out;
}

}  // namespace

MessageAssembler::Result MessageAssembler::feed(const FragmentHeader& header, const uint8_t* data,
                                                size_t size, size_t offset, size_t total) {
  if (offset == 0) {
    // A first fragment always starts a new message, whatever state the previous one was in.
    active_ = true;
    skipping_ = total > cap_ || size > total;
    total_ = total;
    expectedOffset_ = 0;
    bool cut = false;
    msg_ = InboundMessage{};
    msg_.topic = keep(header.topic, topic_, sizeof topic_, cut);
    if (cut) skipping_ = true;  // a topic we cannot hold is not one of ours
    msg_.responseTopic = keep(header.responseTopic, responseTopic_, sizeof responseTopic_, cut);
    if (cut) msg_.responseTopic.size = 0;  // unusable: protocol §2.1 refuses > 255 bytes anyway
    msg_.correlation = keep(header.correlation, correlation_, sizeof correlation_, cut);
    msg_.correlationTooLong = cut;
  }
  if (!active_ || offset != expectedOffset_ || total != total_ || size > total_ - offset) {
    active_ = false;
    return Result::DROPPED;
  }
  if (!skipping_ && size != 0) std::memcpy(buf_ + offset, data, size);
  expectedOffset_ = offset + size;
  if (expectedOffset_ < total_) return Result::PENDING;
  active_ = false;
  if (skipping_) return Result::DROPPED;
  msg_.payload.data = buf_;
  msg_.payload.size = total_;
  return Result::COMPLETE;
}

}  // namespace ota_core
