// shared_stream_test.cpp: the receiver's side of the shared image stream (protocol §11.4) against
// fakes: the SHARED flag of the REQUEST, the subscription a MANIFEST may ask for (and the one it
// may not), shared CHUNKs written in order with unicast ones, the ones dropped without an answer,
// a corrupt one NACKed and repaired, and the subscription ended with the attempt.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "fakes.h"
#include "ota_core/topics.h"

using namespace ota_core;
using fakes::Harness;

namespace {

constexpr uint32_t kStream = 9;

std::string topicOf(const Harness& h, uint32_t streamId = kStream, const char* prefix = "ota") {
  char out[kMaxSharedTopicBytes];
  size_t n = buildSharedImageTopic(out, sizeof out, prefix, h.sha, streamId);
  return std::string(out, n);
}

/// A MANIFEST announcing stream kStream on `topic` (its own topic when empty).
void sendSharedManifest(Harness& h, const std::string& topic = "") {
  std::string t = topic.empty() ? topicOf(h) : topic;
  h.sendManifest(0, [&](Manifest& m) {
    m.shared = true;
    m.streamId = kStream;
    m.sharedTopic = Bytes{reinterpret_cast<const uint8_t*>(t.data()), t.size()};
  });
}

void sendShared(Harness& h, uint32_t index, bool corrupt = false, uint32_t id = kStream) {
  // No properties: a shared CHUNK carries no Correlation Data and no Response Topic.
  InboundMessage m;
  std::string topic = topicOf(h);
  std::vector<uint8_t> bytes = h.chunkBytes(index, corrupt, id);
  m.topic = Bytes{reinterpret_cast<const uint8_t*>(topic.data()), topic.size()};
  m.payload = Bytes{bytes.data(), bytes.size()};
  h.rx->onMessage(m);
}

Harness sharedHarness() {
  Harness h(8 * 1024, 1024, 4);  // 8 chunks, an ACK every 2
  h.cfg.shared = true;
  return h;
}

TEST(SharedStream, RequestSetsSharedOnlyWhenConfiguredAndUnderMqtt5) {
  Harness on = sharedHarness();
  on.make().start();
  ASSERT_EQ(on.requests().size(), 1u);
  EXPECT_TRUE(on.requests()[0].shared);

  Harness off;
  off.make().start();
  EXPECT_FALSE(off.requests()[0].shared);

  Harness v311 = sharedHarness();
  v311.cfg.mqtt5 = false;
  v311.make().start();
  EXPECT_FALSE(v311.requests()[0].shared);  // §11.1: MQTT 3.1.1 is served by unicast
}

TEST(SharedStream, WritesSharedChunksInOrderVerifiesAndLeavesTheTopic) {
  Harness h = sharedHarness();
  Receiver& rx = h.make();
  rx.start();
  sendSharedManifest(h);
  ASSERT_EQ(rx.state(), State::RECEIVING);
  ASSERT_EQ(h.pub.subscribed, (std::vector<std::string>{topicOf(h)}));
  EXPECT_EQ(std::string(rx.sharedTopic()), topicOf(h));
  for (uint32_t i = 0; i < h.chunkCount(); ++i) sendShared(h, i);
  EXPECT_EQ(rx.state(), State::VERIFIED);
  EXPECT_TRUE(h.flashHoldsImage());
  EXPECT_EQ(rx.stats().sharedWritten, h.chunkCount());
  // ACKs go on the device's own ack topic with its own transfer id.
  ASSERT_FALSE(h.acks().empty());
  EXPECT_EQ(h.acks().back().transferId, h.transferId);
  EXPECT_EQ(h.acks().back().nextIndex, h.chunkCount());
  EXPECT_EQ(h.pub.unsubscribed, (std::vector<std::string>{topicOf(h)}));
  EXPECT_EQ(rx.sharedTopic()[0], '\0');
}

TEST(SharedStream, DropsSharedChunksAheadBehindOrOfAnotherStreamWithoutAnswering) {
  Harness h = sharedHarness();
  Receiver& rx = h.make();
  rx.start();
  sendSharedManifest(h);
  sendShared(h, 0);
  sendShared(h, 1);
  size_t sent = h.pub.sent.size();
  uint32_t writes = h.flash.writeCalls;
  sendShared(h, 3);                  // ahead: the stream runs ahead of a device that is behind
  sendShared(h, 0);                  // behind: the device has it
  sendShared(h, 2, false, kStream + 1);  // another stream
  sendShared(h, 2, false, h.transferId);  // the unicast transfer id on the shared topic
  EXPECT_EQ(h.pub.sent.size(), sent);  // no ACK, no NACK
  EXPECT_EQ(h.flash.writeCalls, writes);
  EXPECT_EQ(rx.stats().sharedReceived, 6u);
  EXPECT_EQ(rx.stats().sharedWritten, 2u);
  // The unicast repair of chunk 2 goes in between, then the stream again.
  h.sendChunk(2);
  sendShared(h, 3);
  EXPECT_EQ(rx.stats().sharedWritten, 3u);
  for (uint32_t i = 4; i < h.chunkCount(); ++i) sendShared(h, i);
  EXPECT_EQ(rx.state(), State::VERIFIED);
  EXPECT_TRUE(h.flashHoldsImage());
}

TEST(SharedStream, NacksACorruptSharedChunkAndTakesItsUnicastRepair) {
  Harness h = sharedHarness();
  Receiver& rx = h.make();
  rx.start();
  sendSharedManifest(h);
  sendShared(h, 0);
  sendShared(h, 1, /*corrupt=*/true);
  ASSERT_FALSE(h.acks().empty());
  EXPECT_EQ(h.acks().back().nack, NackReason::CRC_MISMATCH);
  EXPECT_EQ(h.acks().back().nextIndex, 1u);
  EXPECT_EQ(h.acks().back().transferId, h.transferId);
  sendShared(h, 2);  // behind the gap: dropped silently
  h.sendAllFrom(1);  // the sender's unicast repair from the ACK
  EXPECT_EQ(rx.state(), State::VERIFIED);
  EXPECT_TRUE(h.flashHoldsImage());
  EXPECT_EQ(rx.stats().crcErrors, 1u);
}

TEST(SharedStream, RefusesASharedTopicThatIsNotItsImagesAndGoesOnByUnicast) {
  for (const std::string& bad : {std::string("ota/dev/dev-2/data"), std::string("ota/img/#"),
                                 std::string("other/img/") + topicOf(Harness()).substr(8)}) {
    Harness h = sharedHarness();
    Receiver& rx = h.make();
    rx.start();
    sendSharedManifest(h, bad);
    ASSERT_EQ(rx.state(), State::RECEIVING) << bad;
    EXPECT_TRUE(h.pub.subscribed.empty()) << bad;
    EXPECT_EQ(rx.stats().sharedRefused, 1u) << bad;
    h.sendAllFrom(0);
    EXPECT_EQ(rx.state(), State::VERIFIED) << bad;
  }
}

TEST(SharedStream, WithoutASubscriptionTheSharedTopicIsNotListenedTo) {
  Harness h = sharedHarness();
  h.pub.canSubscribe = false;  // a platform without subscribe(), or refused
  Receiver& rx = h.make();
  rx.start();
  sendSharedManifest(h);
  ASSERT_EQ(rx.state(), State::RECEIVING);
  EXPECT_EQ(rx.sharedTopic()[0], '\0');
  sendShared(h, 0);
  EXPECT_EQ(rx.stats().sharedReceived, 0u);
  EXPECT_EQ(h.flash.writeCalls, 0u);
  h.sendAllFrom(0);
  EXPECT_EQ(rx.state(), State::VERIFIED);
}

TEST(SharedStream, ANewRequestLeavesTheOldStream) {
  Harness h = sharedHarness();
  Receiver& rx = h.make();
  rx.start();
  sendSharedManifest(h);
  sendShared(h, 0);
  h.clock.now += kDeviceIdleTimeoutMs;
  rx.tick(h.clock.now);  // idle: ask again with the resume point
  ASSERT_EQ(rx.state(), State::REQUESTED);
  EXPECT_EQ(h.pub.unsubscribed, (std::vector<std::string>{topicOf(h)}));
  sendShared(h, 1);  // a late shared CHUNK of the old stream is no longer heard
  EXPECT_EQ(rx.stats().sharedReceived, 1u);
}

}  // namespace
