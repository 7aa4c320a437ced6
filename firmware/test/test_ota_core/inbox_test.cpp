// inbox_test.cpp: the bounded slot pool between the network task and the receiver task.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "os_std.h"
#include "ota_core/inbox.h"

using namespace ota_core;

namespace {

/// An Inbox of `kSlots` 64-byte slots over the host queues; by default the network side does
/// not wait for a slot (the drop path).
template <size_t kSlots>
struct InboxFixture {
  explicit InboxFixture(uint32_t slotWaitMs = 0) : inbox{slots.pointers(), kSlots, free, ready, slotWaitMs} {}
  InboxSlots<kSlots, 64> slots;
  ota_host::StdQueue free{kSlots};
  ota_host::StdQueue ready{kSlots + 1};
  Inbox inbox;

  Inbox::FeedResult send(const std::string& payload, const std::string& corr = "") {
    FragmentHeader h;
    h.topic = bytesOf("ota/dev/d/data");
    h.correlation = Bytes{reinterpret_cast<const uint8_t*>(corr.data()), corr.size()};
    return inbox.feed(h, reinterpret_cast<const uint8_t*>(payload.data()), payload.size(), 0,
                      payload.size());
  }
  std::string take(uint32_t* slotOut = nullptr) {
    const InboundMessage* m = nullptr;
    uint32_t slot = inbox.receive(0, m);
    if (slot == Inbox::kNone) return "<none>";
    std::string s(reinterpret_cast<const char*>(m->payload.data), m->payload.size);
    if (slotOut != nullptr) {
      *slotOut = slot;
    } else {
      inbox.release(slot);
    }
    return s;
  }
};

}  // namespace

TEST(Inbox, HandsOverMessagesInArrivalOrderWithTheirProperties) {
  InboxFixture<2> f;
  EXPECT_EQ(f.send("one", "corr1"), Inbox::FeedResult::QUEUED);
  EXPECT_EQ(f.send("two"), Inbox::FeedResult::QUEUED);
  const InboundMessage* m = nullptr;
  uint32_t slot = f.inbox.receive(0, m);
  ASSERT_NE(slot, Inbox::kNone);
  EXPECT_TRUE(equals(m->payload, "one"));
  EXPECT_TRUE(equals(m->correlation, "corr1"));
  EXPECT_TRUE(equals(m->topic, "ota/dev/d/data"));
  f.inbox.release(slot);
  EXPECT_EQ(f.take(), "two");
  EXPECT_EQ(f.take(), "<none>");
}

TEST(Inbox, DropsAndCountsAMessageWhenEverySlotIsTakenThenAcceptsAgainAfterARelease) {
  InboxFixture<2> f;
  EXPECT_EQ(f.send("a"), Inbox::FeedResult::QUEUED);
  EXPECT_EQ(f.send("b"), Inbox::FeedResult::QUEUED);
  // The receiver task is busy writing flash: no slot is free, the network task must not wait.
  EXPECT_EQ(f.send("c"), Inbox::FeedResult::DROPPED);
  EXPECT_EQ(f.inbox.droppedPoolFull(), 1u);
  uint32_t slot = 0;
  EXPECT_EQ(f.take(&slot), "a");
  // Still held while the receiver handles it: the pool stays full.
  EXPECT_EQ(f.send("d"), Inbox::FeedResult::DROPPED);
  f.inbox.release(slot);
  EXPECT_EQ(f.send("e"), Inbox::FeedResult::QUEUED);
  EXPECT_EQ(f.take(), "b");
  EXPECT_EQ(f.take(), "e");
  EXPECT_EQ(f.inbox.droppedPoolFull(), 2u);
}

TEST(Inbox, ReassemblesFragmentsAndSkipsTheRestOfAMessageThatFoundNoSlot) {
  InboxFixture<2> f;
  EXPECT_EQ(f.send("x"), Inbox::FeedResult::QUEUED);
  EXPECT_EQ(f.send("y"), Inbox::FeedResult::QUEUED);
  FragmentHeader h;
  h.topic = bytesOf("ota/dev/d/data");
  const uint8_t* p = reinterpret_cast<const uint8_t*>("0123456789");
  EXPECT_EQ(f.inbox.feed(h, p, 4, 0, 10), Inbox::FeedResult::DROPPED);
  EXPECT_EQ(f.inbox.feed(FragmentHeader{}, p + 4, 6, 4, 10), Inbox::FeedResult::DROPPED);
  EXPECT_EQ(f.inbox.droppedPoolFull(), 1u);  // one message, counted once
  EXPECT_EQ(f.take(), "x");
  EXPECT_EQ(f.inbox.feed(h, p, 4, 0, 10), Inbox::FeedResult::PENDING);
  EXPECT_EQ(f.inbox.feed(FragmentHeader{}, p + 4, 6, 4, 10), Inbox::FeedResult::QUEUED);
  EXPECT_EQ(f.take(), "y");
  EXPECT_EQ(f.take(), "0123456789");
}

TEST(Inbox, AMessageLargerThanASlotIsDroppedWithoutLosingTheSlot) {
  InboxFixture<2> f;
  std::string big(65, 'z');
  EXPECT_EQ(f.send(big), Inbox::FeedResult::DROPPED);
  EXPECT_EQ(f.inbox.droppedOther(), 1u);
  EXPECT_EQ(f.send("a"), Inbox::FeedResult::QUEUED);
  EXPECT_EQ(f.send("b"), Inbox::FeedResult::QUEUED);
  EXPECT_EQ(f.take(), "a");
  EXPECT_EQ(f.take(), "b");
}

TEST(Inbox, LinkEventsWakeTheReceiverAndAccumulateUntilTaken) {
  InboxFixture<2> f;
  f.inbox.postEvent(kLinkDown);
  f.inbox.postEvent(kLinkReady);
  const InboundMessage* m = nullptr;
  EXPECT_EQ(f.inbox.receive(1000, m), Inbox::kNone);  // woken at once, no message
  EXPECT_EQ(f.inbox.takeEvents(), static_cast<uint32_t>(kLinkDown | kLinkReady));
  EXPECT_EQ(f.inbox.takeEvents(), 0u);
}

TEST(Inbox, WaitsABoundedTimeForTheReceiverToFreeASlotInsteadOfDropping) {
  InboxFixture<2> f(2000);
  EXPECT_EQ(f.send("a"), Inbox::FeedResult::QUEUED);
  EXPECT_EQ(f.send("b"), Inbox::FeedResult::QUEUED);
  // The receiver task finishes its flash write 50 ms later and gives "a"'s slot back.
  std::thread receiver([&] {
    uint32_t slot = 0;
    EXPECT_EQ(f.take(&slot), "a");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    f.inbox.release(slot);
  });
  EXPECT_EQ(f.send("c"), Inbox::FeedResult::QUEUED);  // waited, nothing lost
  receiver.join();
  EXPECT_EQ(f.inbox.waitedForSlot(), 1u);
  EXPECT_EQ(f.inbox.droppedPoolFull(), 0u);
  EXPECT_EQ(f.take(), "b");
  EXPECT_EQ(f.take(), "c");
}

TEST(Inbox, DropsAfterTheSlotWaitRunsOut) {
  InboxFixture<2> f(30);
  f.send("a");
  f.send("b");
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(f.send("c"), Inbox::FeedResult::DROPPED);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(30));
  EXPECT_EQ(f.inbox.droppedPoolFull(), 1u);
}
