// ota_core/inbox.h: the hand-over between the network task and the receiver task. The network
// task (esp-mqtt's MQTT task, libmosquitto's thread on the host) copies every complete message,
// fragments reassembled and MQTT 5 properties copied at offset 0, into one of a bounded pool of
// preallocated slots and queues the slot's index; the receiver task takes it, hands it to the
// Receiver and gives the slot back. The network task therefore never waits for the flash, and
// the receiver never reads a client library buffer that the next packet may overwrite.
//
// When every slot is taken (the flash is slower than the link), the network task waits for one
// at most `slotWaitMs` (about one slow flash write): meanwhile TCP flow control holds the sender
// back, as it did when the receiver ran inside the network callback, and nothing is lost. After
// that the new message is dropped and counted. That loses nothing either: a dropped CHUNK leaves
// a hole that the next CHUNK reveals, the Receiver NACKs it with GAP (protocol §7, go-back-N) and
// the sender resends from there; a dropped MANIFEST or ERROR is asked for again after
// DEVICE_IDLE_TIMEOUT_MS. Dropping costs a resend of the window, waiting does not: measured in
// docs/performance.md.
//
// esp-mqtt's MQTT task keeps the client's API lock while it waits here, and every publish takes
// that lock: the receiver task must therefore publish only while a slot is free, or the two
// would wait for each other until slotWaitMs runs out. It queues what it publishes and sends it
// when hasFreeSlot() (TrackingPublisher and ReceiverTask, receiver_task.h).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>

#include "ota_core/assembler.h"
#include "ota_core/os.h"

namespace ota_core {

/// Most slots an Inbox can hold (a slot costs one chunk of RAM).
constexpr size_t kMaxInboxSlots = 8;
/// Fewest slots that let the network receive the next chunk while the previous one is written.
constexpr size_t kMinInboxSlots = 2;
/// Longest wait of the network task for a free slot before it drops the message: a little more
/// than one chunk's flash write (ESP32: ~55 ms typical per 4 KiB sector erased and programmed,
/// up to ~300 ms worst case per the flash datasheets).
constexpr uint32_t kInboxSlotWaitMs = 350;

/// Link events the network task reports to the receiver task (bits of Inbox::takeEvents()).
enum LinkEvent : uint32_t {
  /// Connected and every subscription granted.
  kLinkReady = 1u << 0,
  /// A SUBACK refused a subscription (reason code >= 0x80): this device cannot get answers.
  kLinkSubscribeRefused = 1u << 1,
  /// The connection to the broker was lost (the client reconnects by itself).
  kLinkDown = 1u << 2,
  /// With kLinkReady (or kLinkSubscribeRefused): the broker kept no session for the new
  /// connection, so subscriptions made before (the shared image topic's, §11.4) are gone and must
  /// be made again (link_session.h).
  kLinkSessionLost = 1u << 3,
};

/// See file header. Producer calls (feed, postEvent) come from one network task; consumer
/// calls (receive, release, takeEvents) from one receiver task.
class Inbox {
 public:
  /// Outcome of feed().
  enum class FeedResult : uint8_t {
    QUEUED,   ///< a whole message went to the receiver task
    PENDING,  ///< a fragment was stored; more are needed
    DROPPED,  ///< the message is lost (pool full, too large or fragments out of order)
  };

  /// `slots` are `count` assemblers over their own storage (see InboxSlots). `free` and `ready`
  /// are empty queues with room for `count` items each, plus one more in `ready` for the wake-up
  /// of postEvent(). `slotWaitMs` bounds the network task's wait for a free slot (0: drop at
  /// once).
  Inbox(MessageAssembler* const* slots, size_t count, OsQueue& free, OsQueue& ready,
        uint32_t slotWaitMs = kInboxSlotWaitMs);

  // ---- network task ----
  /// Feeds one fragment of an MQTT message (see MessageAssembler::feed). At offset 0 it takes a
  /// free slot, waiting at most slotWaitMs; when none came free the whole message is dropped and
  /// counted in droppedPoolFull().
  FeedResult feed(const FragmentHeader& header, const uint8_t* data, size_t size, size_t offset,
                  size_t total);
  /// Reports link events (LinkEvent bits) and wakes the receiver task. Never blocks; if the wake
  /// cannot be queued the receiver task still sees the bits at its next timeout.
  void postEvent(uint32_t events);

  // ---- receiver task ----
  /// Waits up to `timeoutMs` for a message. Returns the slot index (pass it to release()) and
  /// sets `message`, or returns kNone on a timeout or a wake-up by postEvent().
  uint32_t receive(uint32_t timeoutMs, const InboundMessage*& message);
  /// Gives a slot back to the network task once its message was handled.
  void release(uint32_t slot);
  /// At least one slot is neither filled nor being handled: the network task cannot be waiting.
  bool hasFreeSlot() const { return freeSlots_.load() > 0; }
  /// Link events posted since the last call (cleared by the call).
  uint32_t takeEvents() { return events_.exchange(0); }

  /// Messages dropped because every slot stayed taken for slotWaitMs.
  uint32_t droppedPoolFull() const { return droppedPoolFull_.load(); }
  /// Messages that found every slot taken and waited for one (dropped or not).
  uint32_t waitedForSlot() const { return waited_.load(); }
  /// Messages dropped by the assembler (larger than a slot, or fragments out of sequence).
  uint32_t droppedOther() const { return droppedOther_.load(); }
  size_t slotCount() const { return count_; }

  /// What receive() returns when no message arrived.
  static constexpr uint32_t kNone = UINT32_MAX;

 private:
  MessageAssembler* const* slots_;
  size_t count_;
  OsQueue& free_;
  OsQueue& ready_;
  uint32_t slotWaitMs_;
  /// Slot being filled by the network task (kNone: none), and whether the message that is
  /// arriving is being skipped because no slot was free.
  uint32_t filling_ = kNone;
  bool skipping_ = false;
  std::atomic<uint32_t> events_{0};
  std::atomic<uint32_t> droppedPoolFull_{0};
  std::atomic<uint32_t> droppedOther_{0};
  std::atomic<uint32_t> waited_{0};
  /// Items in `free` (kept beside the queue: OsQueue has no count).
  std::atomic<uint32_t> freeSlots_{0};
};

/// Storage for `kSlots` messages of up to `kSlotBytes` each, with their assemblers; statically
/// allocatable (no heap), e.g. `static InboxSlots<2, 4120> slots;`.
template <size_t kSlots, size_t kSlotBytes>
class InboxSlots {
  static_assert(kSlots >= kMinInboxSlots && kSlots <= kMaxInboxSlots, "slot count out of range");

 public:
  InboxSlots() {
    for (size_t i = 0; i < kSlots; ++i) {
      pointers_[i] = new (&assemblers_[i]) MessageAssembler(bytes_[i], kSlotBytes);
    }
  }
  ~InboxSlots() {
    for (size_t i = 0; i < kSlots; ++i) pointers_[i]->~MessageAssembler();
  }
  InboxSlots(const InboxSlots&) = delete;
  InboxSlots& operator=(const InboxSlots&) = delete;
  MessageAssembler* const* pointers() const { return pointers_; }
  static constexpr size_t count() { return kSlots; }

 private:
  uint8_t bytes_[kSlots][kSlotBytes];
  alignas(MessageAssembler) unsigned char assemblers_[kSlots][sizeof(MessageAssembler)];
  MessageAssembler* pointers_[kSlots];
};

}  // namespace ota_core
