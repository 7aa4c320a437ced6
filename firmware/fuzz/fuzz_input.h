// fuzz_input.h: the byte reader the fuzz drivers parse their input with, and the writer the seed
// generator builds inputs with. Reading past the end yields zeros and sets `exhausted`, so every
// byte string is a valid input: the fuzzer never wastes executions on a framing the driver
// refuses.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ota_fuzz {

/// Sequential little-endian reader over a fuzz input.
class FuzzInput {
 public:
  FuzzInput(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  bool empty() const { return pos_ >= size_; }
  size_t remaining() const { return size_ - pos_; }
  uint8_t u8() { return pos_ < size_ ? data_[pos_++] : 0; }
  uint16_t u16() {
    uint16_t lo = u8();
    return static_cast<uint16_t>(lo | (u8() << 8));
  }
  uint32_t u32() {
    uint32_t lo = u16();
    return lo | (static_cast<uint32_t>(u16()) << 16);
  }
  /// Up to `n` bytes (fewer at the end of the input) copied into a buffer of exactly that size,
  /// so that AddressSanitizer sees a read one byte past a message.
  std::vector<uint8_t> bytes(size_t n) {
    if (n > remaining()) n = remaining();
    std::vector<uint8_t> out(data_ + pos_, data_ + pos_ + n);
    pos_ += n;
    return out;
  }
  /// The rest of the input.
  std::vector<uint8_t> rest() { return bytes(remaining()); }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

/// Builds fuzz inputs (seed corpus, regression inputs) in the layout FuzzInput reads.
class FuzzOutput {
 public:
  FuzzOutput& u8(uint8_t v) {
    out_.push_back(v);
    return *this;
  }
  FuzzOutput& u16(uint16_t v) {
    return u8(static_cast<uint8_t>(v)).u8(static_cast<uint8_t>(v >> 8));
  }
  FuzzOutput& u32(uint32_t v) {
    return u16(static_cast<uint16_t>(v)).u16(static_cast<uint16_t>(v >> 16));
  }
  FuzzOutput& bytes(const std::vector<uint8_t>& b) {
    out_.insert(out_.end(), b.begin(), b.end());
    return *this;
  }
  const std::vector<uint8_t>& data() const { return out_; }

 private:
  std::vector<uint8_t> out_;
};

}  // namespace ota_fuzz
