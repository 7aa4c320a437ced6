// inbox.cpp: see inbox.h.
#include "ota_core/inbox.h"

namespace ota_core {

Inbox::Inbox(MessageAssembler* const* slots, size_t count, OsQueue& free, OsQueue& ready,
             uint32_t slotWaitMs)
    : slots_(slots), count_(count), free_(free), ready_(ready), slotWaitMs_(slotWaitMs) {
  for (size_t i = 0; i < count_; ++i) {
    if (free_.trySend(static_cast<uint32_t>(i))) freeSlots_.fetch_add(1);
  }
}

Inbox::FeedResult Inbox::feed(const FragmentHeader& header, const uint8_t* data, size_t size,
                              size_t offset, size_t total) {
  if (offset == 0) {
    // A first fragment starts a new message. A slot still held by an unfinished message (its
    // fragments stopped arriving) is reused for it; otherwise take a free one, waiting a bounded
    // time for the receiver task to finish its flash write.
    skipping_ = false;
    if (filling_ == kNone) {
      if (!free_.receive(filling_, 0)) {
        waited_.fetch_add(1);
        if (slotWaitMs_ == 0 || !free_.receive(filling_, slotWaitMs_)) {
          filling_ = kNone;
          skipping_ = true;
          droppedPoolFull_.fetch_add(1);
          return FeedResult::DROPPED;
        }
      }
      freeSlots_.fetch_sub(1);
    }
  } else if (skipping_) {
    return FeedResult::DROPPED;  // the rest of a message that found no slot (counted once)
  } else if (filling_ == kNone) {
    droppedOther_.fetch_add(1);  // a continuation without its first fragment
    return FeedResult::DROPPED;
  }
  MessageAssembler::Result r = slots_[filling_]->feed(header, data, size, offset, total);
  if (r == MessageAssembler::Result::PENDING) return FeedResult::PENDING;
  if (r == MessageAssembler::Result::DROPPED) {
    // Too large for a slot or out of sequence: the slot stays ours for the next message.
    droppedOther_.fetch_add(1);
    return FeedResult::DROPPED;
  }
  uint32_t slot = filling_;
  filling_ = kNone;
  // Cannot fail: `ready` has room for every slot, and a slot is queued at most once.
  ready_.trySend(slot);
  return FeedResult::QUEUED;
}

void Inbox::postEvent(uint32_t events) {
  events_.fetch_or(events);
  ready_.trySend(kNone);
}

uint32_t Inbox::receive(uint32_t timeoutMs, const InboundMessage*& message) {
  uint32_t item = kNone;
  if (!ready_.receive(item, timeoutMs) || item >= count_) return kNone;
  message = &slots_[item]->message();
  return item;
}

void Inbox::release(uint32_t slot) {
  if (slot < count_ && free_.trySend(slot)) freeSlots_.fetch_add(1);
}

}  // namespace ota_core
