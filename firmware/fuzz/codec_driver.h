// codec_driver.h: one fuzz input through every decoder of the firmware core's codec, the
// topic-aware type check and the topic parser, with the properties that must hold for any input.
// Shared by the libFuzzer target (fuzz_codec.cpp) and the regression gtest of the host build.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ota_fuzz {

/// Input layout: byte 0 picks the topic kind the message arrived on (modulo the six kinds of
/// protocol §2); the rest is the message. Properties checked:
/// - every decoder returns without a sanitizer report, and a decoder of another type than the
///   header's refuses with the header's error or UNEXPECTED_TYPE;
/// - peekTypeOn() agrees with peekType() and the topic table (carries());
/// - a message that decodes encodes back to exactly the same bytes, an encoder given a buffer
///   too small for it returns 0 without writing past it, and peekTransferId() reads the decoded
///   transfer id;
/// - the message taken as a topic name: a topic parseDeviceTopic() accepts is rebuilt exactly by
///   buildDeviceTopic(), and isAckTopicOf() agrees with it;
/// - the message taken as a string: an id isValidId() accepts is valid UTF-8.
/// Returns nullptr when every property holds, else a sentence naming the broken one.
const char* fuzzCodec(const uint8_t* data, size_t size);

}  // namespace ota_fuzz
