// receiver_task_test.cpp: the receiver task over a real Inbox and the host queues: requests
// when the link comes up, drops a message when the pool is full and recovers it with a GAP NACK,
// and lets the self-test see an answer before the Receiver opens the slot.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "fakes.h"
#include "os_std.h"
#include "ota_core/inbox.h"
#include "ota_core/receiver_task.h"

using namespace ota_core;

namespace {

struct TaskFixture {
  fakes::Harness h{10000, 1024, 8};
  TrackingPublisher publisher{h.pub, "ota/dev/dev-1/req"};
  Receiver rx{h.cfg, h.flash, publisher, h.store, h.clock};
  InboxSlots<2, kChunkHeaderBytes + 4096> slots;
  ota_host::StdQueue free{2};
  ota_host::StdQueue ready{3};
  Inbox inbox{slots.pointers(), 2, free, ready, 0};  // drop at once: no second task here
  ReceiverTask task;

  explicit TaskFixture(SelfTest* selfTest = nullptr)
      : task(rx, inbox, h.clock, publisher, selfTest, options()) {}
  static ReceiverTaskOptions options() {
    ReceiverTaskOptions o;
    o.tickMs = 0;
    return o;
  }
  /// What the network task does with a message: copy it into the inbox.
  Inbox::FeedResult arrive(const std::vector<uint8_t>& payload) {
    std::string topic = "ota/dev/dev-1/data";
    auto corr = h.lastCorrelation();
    FragmentHeader hd;
    hd.topic = bytesOf(topic.c_str());
    hd.correlation = Bytes{corr.data(), corr.size()};
    hd.responseTopic = bytesOf(h.ackTopic.c_str());
    return inbox.feed(hd, payload.data(), payload.size(), 0, payload.size());
  }
  void drain() {
    for (int i = 0; i < 10; ++i) task.step();
  }
};

}  // namespace

TEST(ReceiverTask, SendsARequestWhenTheLinkComesUp) {
  TaskFixture f;
  f.task.step();
  EXPECT_TRUE(f.h.requests().empty());
  f.inbox.postEvent(kLinkReady);
  f.task.step();
  EXPECT_TRUE(f.task.linkReady());
  EXPECT_EQ(f.h.requests().size(), 1u);
  EXPECT_EQ(f.rx.state(), State::REQUESTED);
  EXPECT_EQ(f.publisher.lastRequestCorrelation().size, kCorrelationBytes);
}

TEST(ReceiverTask, AChunkDroppedOnAFullPoolIsRecoveredByAGapNack) {
  TaskFixture f;
  f.inbox.postEvent(kLinkReady);
  f.task.step();
  ASSERT_EQ(f.arrive(f.h.manifestBytes(0)), Inbox::FeedResult::QUEUED);
  f.task.step();
  ASSERT_EQ(f.rx.state(), State::RECEIVING);
  // The receiver task is busy with the flash while chunks 0..3 arrive: two fit, two are dropped.
  EXPECT_EQ(f.arrive(f.h.chunkBytes(0)), Inbox::FeedResult::QUEUED);
  EXPECT_EQ(f.arrive(f.h.chunkBytes(1)), Inbox::FeedResult::QUEUED);
  EXPECT_EQ(f.arrive(f.h.chunkBytes(2)), Inbox::FeedResult::DROPPED);
  EXPECT_EQ(f.arrive(f.h.chunkBytes(3)), Inbox::FeedResult::DROPPED);
  EXPECT_EQ(f.inbox.droppedPoolFull(), 2u);
  f.drain();
  EXPECT_EQ(f.arrive(f.h.chunkBytes(4)), Inbox::FeedResult::QUEUED);
  f.drain();
  // Chunk 4 shows the hole: GAP NACK for nextIndex 2, the sender goes back to it (protocol §7).
  ASSERT_FALSE(f.h.acks().empty());
  Ack nack = f.h.acks().back();
  EXPECT_EQ(nack.nack, NackReason::GAP);
  EXPECT_EQ(nack.nextIndex, 2u);
  for (uint32_t i = 2; i < f.h.chunkCount(); ++i) {
    ASSERT_EQ(f.arrive(f.h.chunkBytes(i)), Inbox::FeedResult::QUEUED);
    f.task.step();
  }
  EXPECT_EQ(f.rx.state(), State::VERIFIED);
  EXPECT_TRUE(f.h.flashHoldsImage());
}

namespace {
class OrderedBoot : public BootControl {
 public:
  explicit OrderedBoot(std::vector<std::string>& log) : log_(log) {}
  bool pendingVerify() override { return true; }
  const char* runningSlot() override { return "ota_0"; }
  bool markValid() override {
    log_.push_back("valid");
    return true;
  }
  bool rollback() override { return true; }

 private:
  std::vector<std::string>& log_;
};
class NoRecord : public BootStore {
 public:
  bool loadBootRecord(BootRecord&) override { return false; }
  bool saveBootRecord(const BootRecord&) override { return true; }
  void clearBootRecord() override {}
};
}  // namespace

TEST(ReceiverTask, MarksAPendingImageValidBeforeTheReceiverOpensTheSlotForAManifest) {
  std::vector<std::string> log;
  OrderedBoot boot(log);
  NoRecord records;
  fakes::FakePublisher statusOut;
  SelfTest selfTest(boot, records, statusOut, "ota/dev/dev-1/status", "1.0.0", 60000);
  selfTest.begin(0);
  TaskFixture f(&selfTest);
  f.inbox.postEvent(kLinkReady);
  f.task.step();
  EXPECT_EQ(selfTest.phase(), SelfTestPhase::WAITING_ANSWER);
  ASSERT_EQ(f.arrive(f.h.manifestBytes(0)), Inbox::FeedResult::QUEUED);
  f.task.step();
  EXPECT_EQ(selfTest.phase(), SelfTestPhase::PASSED);
  // esp_ota_begin refuses while PENDING_VERIFY: "valid" must come before the slot opened.
  EXPECT_EQ(log, std::vector<std::string>{"valid"});
  EXPECT_EQ(f.h.flash.begins, 1u);
  EXPECT_EQ(f.rx.state(), State::RECEIVING);
}

TEST(ReceiverTask, DefersPublishesUntilTheSlotIsReleased) {
  // While the receiver task holds a slot, the network task may wait for it holding esp-mqtt's
  // API lock, which every publish takes: the ACK must leave only after the release.
  struct SlotWatcher : public Publisher {
    ota_host::StdQueue* free = nullptr;
    std::vector<bool> slotFreeAtPublish;
    bool publish(const char*, const uint8_t*, size_t, const char*, Bytes) override {
      uint32_t item = 0;
      bool gotOne = free->receive(item, 0);
      if (gotOne) free->trySend(item);  // put it back: only looking
      slotFreeAtPublish.push_back(gotOne);
      return true;
    }
  };
  fakes::Harness h{2048, 1024, 2};
  SlotWatcher watcher;
  TrackingPublisher publisher{watcher, "ota/dev/dev-1/req"};
  Receiver rx{h.cfg, h.flash, publisher, h.store, h.clock};
  InboxSlots<2, kChunkHeaderBytes + 4096> slots;
  ota_host::StdQueue free{2}, ready{3};
  watcher.free = &free;
  Inbox inbox{slots.pointers(), 2, free, ready, 0};
  ReceiverTask task(rx, inbox, h.clock, publisher, nullptr, TaskFixture::options());
  inbox.postEvent(kLinkReady);
  task.step();
  std::string topic = "ota/dev/dev-1/data";
  auto arrive = [&](const std::vector<uint8_t>& payload) {
    FragmentHeader hd;
    hd.topic = bytesOf(topic.c_str());
    Bytes corr = publisher.lastRequestCorrelation();
    hd.correlation = corr;
    inbox.feed(hd, payload.data(), payload.size(), 0, payload.size());
  };
  arrive(h.manifestBytes(0));
  task.step();
  // Fill the other slot so that only the message being handled can free one.
  arrive(h.chunkBytes(0));
  arrive(h.chunkBytes(1));
  task.step();
  task.step();
  ASSERT_EQ(rx.state(), State::VERIFIED);
  ASSERT_GE(watcher.slotFreeAtPublish.size(), 3u);  // REQUEST, ACK, STATUS VERIFIED
  for (bool slotFree : watcher.slotFreeAtPublish) EXPECT_TRUE(slotFree);
  EXPECT_GE(publisher.deferred(), 2u);
}

TEST(ReceiverTask, KeepsPublishesQueuedWhileEverySlotIsTakenAndSendsThemOnceOneIsFree) {
  // A clock that lets the "network task" refill a slot as soon as one is freed mid-step.
  struct HookClock : public Clock {
    std::function<void()> hook;
    Inbox* inbox = nullptr;
    uint32_t nowMs() override {
      if (hook && inbox != nullptr && inbox->hasFreeSlot()) {
        auto h = hook;
        hook = nullptr;
        h();
      }
      return 1000;
    }
  };
  fakes::Harness h{4096, 1024, 2};
  HookClock clock;
  TrackingPublisher publisher{h.pub, "ota/dev/dev-1/req"};
  Receiver rx{h.cfg, h.flash, publisher, h.store, clock};
  InboxSlots<2, kChunkHeaderBytes + 4096> slots;
  ota_host::StdQueue free{2}, ready{3};
  Inbox inbox{slots.pointers(), 2, free, ready, 0};
  clock.inbox = &inbox;
  ReceiverTask task(rx, inbox, clock, publisher, nullptr, TaskFixture::options());
  std::string topic = "ota/dev/dev-1/data";
  auto arrive = [&](const std::vector<uint8_t>& payload) {
    FragmentHeader hd;
    hd.topic = bytesOf(topic.c_str());
    hd.correlation = publisher.lastRequestCorrelation();
    return inbox.feed(hd, payload.data(), payload.size(), 0, payload.size());
  };
  inbox.postEvent(kLinkReady);
  task.step();
  arrive(h.manifestBytes(0));
  task.step();
  ASSERT_EQ(rx.state(), State::RECEIVING);
  size_t sentBefore = h.pub.sent.size();
  arrive(h.chunkBytes(0));
  arrive(h.chunkBytes(1));
  // While chunk 0 is handled its slot is freed and at once refilled with chunk 2: no slot free.
  clock.hook = [&] { EXPECT_EQ(arrive(h.chunkBytes(2)), Inbox::FeedResult::QUEUED); };
  task.step();
  EXPECT_FALSE(inbox.hasFreeSlot());
  EXPECT_EQ(h.pub.sent.size(), sentBefore) << "the ACK of chunk 0 must wait for a free slot";
  task.step();  // handles chunk 1: its slot is released and stays free
  EXPECT_TRUE(inbox.hasFreeSlot());
  EXPECT_GT(h.pub.sent.size(), sentBefore);
  // The queued ACK of chunk 0 was replaced by chunk 1's: ACKs are cumulative (protocol §4.5).
  ASSERT_EQ(h.acks().size(), 1u);
  EXPECT_EQ(h.acks().back().nextIndex, 2u);
}
