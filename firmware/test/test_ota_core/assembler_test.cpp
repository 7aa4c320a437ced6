// assembler_test.cpp: fragmented deliveries of every fragment size reassemble to the original
// message, properties come from the first fragment even when the library's buffer is reused,
// and oversize or out-of-sequence fragments drop the message without overflowing.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ota_core/assembler.h"

using namespace ota_core;

namespace {

Bytes view(const std::string& s) { return Bytes{reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }

TEST(MessageAssembler, ReassemblesEveryFragmentSize) {
  std::vector<uint8_t> msg(1000);
  for (size_t i = 0; i < msg.size(); ++i) msg[i] = static_cast<uint8_t>(i * 31 + 7);
  std::vector<uint8_t> storage(1024);
  MessageAssembler a(storage.data(), storage.size());
  for (size_t frag = 1; frag <= msg.size(); ++frag) {
    // The library's buffer: reused (and scribbled over) for every fragment.
    std::vector<uint8_t> libBuf(frag);
    std::string topic = "ota/dev/d/data", rt = "ota/dev/d/ack/s", corr = "12345678";
    MessageAssembler::Result r = MessageAssembler::Result::DROPPED;
    for (size_t off = 0; off < msg.size(); off += frag) {
      size_t n = std::min(frag, msg.size() - off);
      std::copy(msg.begin() + off, msg.begin() + off + n, libBuf.begin());
      FragmentHeader h;
      if (off == 0) h = FragmentHeader{view(topic), view(rt), view(corr)};
      r = a.feed(h, libBuf.data(), n, off, msg.size());
      if (off == 0) {
        // esp-mqtt overwrites the property buffer with the next fragment.
        topic.assign(topic.size(), 'x');
        rt.assign(rt.size(), 'x');
        corr.assign(corr.size(), 'x');
      }
      if (off + n < msg.size()) {
        ASSERT_EQ(r, MessageAssembler::Result::PENDING) << frag;
      }
    }
    ASSERT_EQ(r, MessageAssembler::Result::COMPLETE) << "fragment size " << frag;
    const InboundMessage& m = a.message();
    ASSERT_EQ(std::vector<uint8_t>(m.payload.data, m.payload.data + m.payload.size), msg) << frag;
    EXPECT_TRUE(equals(m.topic, "ota/dev/d/data"));
    EXPECT_TRUE(equals(m.responseTopic, "ota/dev/d/ack/s"));
    EXPECT_TRUE(equals(m.correlation, "12345678"));
  }
}

TEST(MessageAssembler, DropsAMessageLargerThanItsStorageWithoutWriting) {
  std::vector<uint8_t> storage(16, 0xAA);
  MessageAssembler a(storage.data(), 8);
  uint8_t data[12] = {};
  FragmentHeader h{view("t"), {}, {}};
  EXPECT_EQ(a.feed(h, data, 6, 0, 12), MessageAssembler::Result::PENDING);
  EXPECT_EQ(a.feed(FragmentHeader{}, data, 6, 6, 12), MessageAssembler::Result::DROPPED);
  for (size_t i = 8; i < 16; ++i) EXPECT_EQ(storage[i], 0xAA);
}

TEST(MessageAssembler, DropsOnAMissingFragmentAndRecoversOnTheNextMessage) {
  std::vector<uint8_t> storage(64);
  MessageAssembler a(storage.data(), storage.size());
  uint8_t data[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  FragmentHeader h{view("t"), {}, {}};
  EXPECT_EQ(a.feed(h, data, 4, 0, 10), MessageAssembler::Result::PENDING);
  EXPECT_EQ(a.feed(FragmentHeader{}, data + 8, 2, 8, 10), MessageAssembler::Result::DROPPED);
  EXPECT_EQ(a.feed(h, data, 10, 0, 10), MessageAssembler::Result::COMPLETE);
  EXPECT_EQ(a.message().payload.size, 10u);
}

TEST(MessageAssembler, KeepsOnlyATooLongFlagForForeignCorrelationData) {
  std::vector<uint8_t> storage(64);
  MessageAssembler a(storage.data(), storage.size());
  uint8_t data[1] = {0};
  std::string corr(40, 'c');
  ASSERT_EQ(a.feed(FragmentHeader{view("t"), {}, view(corr)}, data, 1, 0, 1),
            MessageAssembler::Result::COMPLETE);
  EXPECT_TRUE(a.message().correlationTooLong);
}

}  // namespace
