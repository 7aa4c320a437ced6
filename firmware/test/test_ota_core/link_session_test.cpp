// link_session_test.cpp: what a reconnect subscribes again (link_session.h, protocol §11.4). The
// network task's LinkSession alone; the receiver subscribing its shared image topic again when
// the session was lost (and going on by unicast when it cannot); and the receiver task doing so
// on the link events the network task posts, over a real Inbox and the host queues.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "fakes.h"
#include "os_std.h"
#include "ota_core/inbox.h"
#include "ota_core/link_session.h"
#include "ota_core/receiver_task.h"
#include "ota_core/topics.h"

using namespace ota_core;
using fakes::Harness;

namespace {

constexpr uint32_t kStream = 9;

std::string sharedTopicOf(const Harness& h) {
  char out[kMaxSharedTopicBytes];
  size_t n = buildSharedImageTopic(out, sizeof out, "ota", h.sha, kStream);
  return std::string(out, n);
}

/// A MANIFEST that announces stream kStream on its image's shared topic.
std::vector<uint8_t> sharedManifest(Harness& h, uint32_t startOffset = 0) {
  std::string t = sharedTopicOf(h);
  return h.manifestBytes(startOffset, [&](Manifest& m) {
    m.shared = true;
    m.streamId = kStream;
    m.sharedTopic = Bytes{reinterpret_cast<const uint8_t*>(t.data()), t.size()};
  });
}

InboundMessage sharedChunk(Harness& h, uint32_t index, std::string& topic,
                           std::vector<uint8_t>& bytes) {
  topic = sharedTopicOf(h);
  bytes = h.chunkBytes(index, false, kStream);
  InboundMessage m;
  m.topic = Bytes{reinterpret_cast<const uint8_t*>(topic.data()), topic.size()};
  m.payload = Bytes{bytes.data(), bytes.size()};
  return m;
}

void sendShared(Harness& h, uint32_t index) {
  std::string topic;
  std::vector<uint8_t> bytes;
  h.rx->onMessage(sharedChunk(h, index, topic, bytes));
}

Harness sharedHarness() {
  Harness h(8 * 1024, 1024, 4);  // 8 chunks
  h.cfg.shared = true;
  return h;
}

}  // namespace

// ---- the network task's rule ----

TEST(LinkSession, AConnectWithoutSessionSubscribesTheLinkTopicsAndReportsTheSessionLostAfterTheirSubacks) {
  LinkSession s(3);
  LinkSession::Connected c = s.onConnected(false);
  EXPECT_TRUE(c.subscribeLinkTopics);
  EXPECT_EQ(c.events, 0u);
  EXPECT_EQ(s.onLinkSuback(false), 0u);
  EXPECT_EQ(s.onLinkSuback(false), 0u);
  EXPECT_EQ(s.onLinkSuback(false), kLinkReady | kLinkSessionLost);
}

TEST(LinkSession, ARefusedLinkSubscriptionIsReportedWithTheLostSession) {
  LinkSession s(2);
  s.onConnected(false);
  EXPECT_EQ(s.onLinkSuback(true), 0u);
  EXPECT_EQ(s.onLinkSuback(false), kLinkSubscribeRefused | kLinkSessionLost);
}

TEST(LinkSession, AConnectWithTheSessionKeptSubscribesNothingAndIsReadyAtOnce) {
  LinkSession s(3);
  LinkSession::Connected c = s.onConnected(true);
  EXPECT_FALSE(c.subscribeLinkTopics);
  EXPECT_EQ(c.events, kLinkReady);
  EXPECT_EQ(c.events & kLinkSessionLost, 0u);
}

TEST(LinkSession, AReconnectCountsItsOwnSubacksFromZero) {
  LinkSession s(3);
  s.onConnected(false);
  s.onLinkSuback(false);
  s.onLinkSuback(false);
  EXPECT_EQ(s.onDisconnected(), kLinkDown);  // the third SUBACK never came
  s.onConnected(false);
  EXPECT_EQ(s.onLinkSuback(false), 0u);
  EXPECT_EQ(s.onLinkSuback(false), 0u);
  EXPECT_EQ(s.onLinkSuback(false), kLinkReady | kLinkSessionLost);
  // A refusal of the first connection does not stick to the next one.
  s.onConnected(false);
  s.onLinkSuback(true);
  s.onLinkSuback(false);
  s.onLinkSuback(false);
  s.onConnected(false);
  s.onLinkSuback(false);
  s.onLinkSuback(false);
  EXPECT_EQ(s.onLinkSuback(false), kLinkReady | kLinkSessionLost);
}

// ---- the receiver's side ----

TEST(Receiver, SubscribesItsSharedTopicAgainWhenTheSessionWasLostAndKeepsWritingSharedChunks) {
  Harness h = sharedHarness();
  Receiver& rx = h.make();
  rx.start();
  h.deliver(sharedManifest(h), h.lastCorrelation());
  ASSERT_EQ(rx.state(), State::RECEIVING);
  sendShared(h, 0);
  sendShared(h, 1);
  rx.onSessionLost();
  EXPECT_EQ(h.pub.subscribed, (std::vector<std::string>{sharedTopicOf(h), sharedTopicOf(h)}));
  EXPECT_EQ(rx.stats().sharedRejoined, 1u);
  EXPECT_EQ(std::string(rx.sharedTopic()), sharedTopicOf(h));
  for (uint32_t i = 2; i < h.chunkCount(); ++i) sendShared(h, i);
  EXPECT_EQ(rx.state(), State::VERIFIED);
  EXPECT_EQ(rx.stats().sharedWritten, h.chunkCount());
}

TEST(Receiver, GoesOnByUnicastWhenTheSharedTopicCannotBeSubscribedAgain) {
  Harness h = sharedHarness();
  Receiver& rx = h.make();
  rx.start();
  h.deliver(sharedManifest(h), h.lastCorrelation());
  sendShared(h, 0);
  h.pub.canSubscribe = false;
  rx.onSessionLost();
  EXPECT_EQ(rx.stats().sharedLapsed, 1u);
  EXPECT_EQ(rx.sharedTopic()[0], '\0');
  uint32_t heard = rx.stats().sharedReceived;
  sendShared(h, 1);  // not subscribed: not listened to
  EXPECT_EQ(rx.stats().sharedReceived, heard);
  h.sendAllFrom(1);
  EXPECT_EQ(rx.state(), State::VERIFIED);
}

TEST(Receiver, ASessionLostWithoutASharedTopicSubscribesNothing) {
  Harness h = sharedHarness();
  Receiver& rx = h.make();
  rx.start();
  rx.onSessionLost();
  h.sendManifest(0);  // a unicast MANIFEST
  rx.onSessionLost();
  EXPECT_TRUE(h.pub.subscribed.empty());
  EXPECT_EQ(rx.stats().sharedRejoined, 0u);
}

// ---- the receiver task on the network task's events ----

namespace {

struct SharedTaskFixture {
  Harness h = sharedHarness();
  TrackingPublisher publisher{h.pub, "ota/dev/dev-1/req"};
  Receiver rx{h.cfg, h.flash, publisher, h.store, h.clock};
  InboxSlots<2, kChunkHeaderBytes + 4096> slots;
  ota_host::StdQueue free{2};
  ota_host::StdQueue ready{3};
  Inbox inbox{slots.pointers(), 2, free, ready, 0};
  ReceiverTask task{rx, inbox, h.clock, publisher, nullptr, options()};
  LinkSession link{3};

  static ReceiverTaskOptions options() {
    ReceiverTaskOptions o;
    o.tickMs = 0;
    return o;
  }
  void arrive(const std::vector<uint8_t>& payload, const std::string& topic) {
    auto corr = h.lastCorrelation();
    FragmentHeader hd;
    hd.topic = bytesOf(topic.c_str());
    hd.correlation = Bytes{corr.data(), corr.size()};
    hd.responseTopic = bytesOf(h.ackTopic.c_str());
    ASSERT_EQ(inbox.feed(hd, payload.data(), payload.size(), 0, payload.size()),
              Inbox::FeedResult::QUEUED);
    task.step();
  }
  /// What the glue does on a CONNECTED and the link's SUBACKs.
  void connect(bool sessionPresent) {
    LinkSession::Connected c = link.onConnected(sessionPresent);
    if (c.events != 0) inbox.postEvent(c.events);
    if (c.subscribeLinkTopics) {
      for (int i = 0; i < 3; ++i) {
        uint32_t e = link.onLinkSuback(false);
        if (e != 0) inbox.postEvent(e);
      }
    }
    task.step();
  }
};

}  // namespace

TEST(ReceiverTask, SubscribesTheSharedTopicAgainAfterAReconnectWithoutSession) {
  SharedTaskFixture f;
  f.connect(false);  // the first connection: nothing shared yet
  EXPECT_TRUE(f.h.pub.subscribed.empty());
  ASSERT_EQ(f.h.requests().size(), 1u);
  f.arrive(sharedManifest(f.h), "ota/dev/dev-1/data");
  ASSERT_EQ(f.rx.state(), State::RECEIVING);
  ASSERT_EQ(f.h.pub.subscribed.size(), 1u);
  f.arrive(f.h.chunkBytes(0, false, kStream), sharedTopicOf(f.h));
  f.inbox.postEvent(f.link.onDisconnected());
  f.task.step();
  EXPECT_FALSE(f.task.linkReady());
  f.connect(false);
  EXPECT_TRUE(f.task.linkReady());
  EXPECT_EQ(f.h.pub.subscribed, (std::vector<std::string>{sharedTopicOf(f.h), sharedTopicOf(f.h)}));
  for (uint32_t i = 1; i < f.h.chunkCount(); ++i) {
    f.arrive(f.h.chunkBytes(i, false, kStream), sharedTopicOf(f.h));
  }
  EXPECT_EQ(f.rx.state(), State::VERIFIED);
  EXPECT_EQ(f.rx.stats().sharedWritten, f.h.chunkCount());
}

TEST(ReceiverTask, KeepsTheSharedSubscriptionAsItIsWhenTheBrokerKeptTheSession) {
  SharedTaskFixture f;
  f.connect(false);
  f.arrive(sharedManifest(f.h), "ota/dev/dev-1/data");
  ASSERT_EQ(f.h.pub.subscribed.size(), 1u);
  f.inbox.postEvent(f.link.onDisconnected());
  f.task.step();
  f.connect(true);
  EXPECT_TRUE(f.task.linkReady());
  EXPECT_EQ(f.h.pub.subscribed.size(), 1u);
  EXPECT_EQ(f.rx.stats().sharedRejoined, 0u);
}
