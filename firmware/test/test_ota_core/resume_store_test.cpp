// resume_store_test.cpp: one atomic resume record, written per flash sector, bound to its slot.
#include <gtest/gtest.h>

#include <cstring>
#include <optional>

#include "ota_core/resume_store.h"

using namespace ota_core;

namespace {

class MemRecords : public RecordStore {
 public:
  bool read(ResumeRecord& out) override {
    if (!record) return false;
    out = *record;
    return true;
  }
  bool write(const ResumeRecord& r) override {
    ++writes;
    record = r;
    return true;
  }
  void erase() override { record.reset(); }
  std::optional<ResumeRecord> record;
  uint32_t writes = 0;
};

ResumePoint point(uint32_t offset, uint8_t shaByte = 1) {
  ResumePoint p;
  std::memset(p.sha256, shaByte, sizeof p.sha256);
  p.offset = offset;
  p.size = 1 << 20;
  std::strcpy(p.product, "blink");
  std::strcpy(p.version, "2.0.0");
  return p;
}

constexpr SlotId kSlotA{0x110000, 0x1F0000};
constexpr SlotId kSlotB{0x300000, 0x1F0000};

}  // namespace

TEST(ResumeRecordStore, WritesOnlyWhenTheOffsetCrossesAFlashSectorBoundary) {
  MemRecords records;
  ResumeRecordStore store(records, kSlotA);
  // 1 MiB in 1 KiB chunks: the receiver saves after each of 1024 chunks.
  for (uint32_t off = 0; off <= (1u << 20); off += 1024) ASSERT_TRUE(store.save(point(off)));
  EXPECT_EQ(records.writes, 257u);  // offset 0, then once per 4 KiB sector
  EXPECT_EQ(store.writes(), 257u);
  // Storage holds a position in the last sector reached, never a later one than written.
  EXPECT_EQ(records.record->point.offset, 1u << 20);
}

TEST(ResumeRecordStore, StoresShaOffsetAndSlotInOneRecord) {
  MemRecords records;
  ResumeRecordStore store(records, kSlotA);
  ASSERT_TRUE(store.save(point(8192)));
  ASSERT_EQ(records.writes, 1u);
  EXPECT_EQ(records.record->point.offset, 8192u);
  EXPECT_EQ(records.record->point.sha256[0], 1);
  EXPECT_EQ(records.record->slot.address, kSlotA.address);
  EXPECT_EQ(records.record->slot.size, kSlotA.size);
  // A new image is written at once, whatever its offset.
  ASSERT_TRUE(store.save(point(8192, 2)));
  EXPECT_EQ(records.writes, 2u);
  EXPECT_EQ(records.record->point.sha256[0], 2);
}

TEST(ResumeRecordStore, LoadsARecordOfItsOwnSlot) {
  MemRecords records;
  ResumeRecordStore(records, kSlotA).save(point(12288));
  ResumeRecordStore after(records, kSlotA);
  ResumePoint p;
  ASSERT_TRUE(after.load(p));
  EXPECT_EQ(p.offset, 12288u);
  EXPECT_STREQ(p.version, "2.0.0");
}

TEST(ResumeRecordStore, ForgetsARecordWrittenForAnotherSlotInsteadOfResumingIntoIt) {
  MemRecords records;
  ResumeRecordStore(records, kSlotA).save(point(12288));
  // After a rollback the update partition is the other one: its bytes are not ours.
  ResumeRecordStore after(records, kSlotB);
  ResumePoint p;
  EXPECT_FALSE(after.load(p));
  EXPECT_FALSE(records.record.has_value());
}

TEST(ResumeRecordStore, RefusesARecordOfAnotherLayout) {
  MemRecords records;
  ResumeRecordStore(records, kSlotA).save(point(4096));
  records.record->layout = kResumeRecordLayout + 1;
  ResumeRecordStore after(records, kSlotA);
  ResumePoint p;
  EXPECT_FALSE(after.load(p));
}

TEST(ResumeRecordStore, WritesAgainWhenThePositionMovesBackwards) {
  MemRecords records;
  ResumeRecordStore store(records, kSlotA);
  store.save(point(5000));
  store.save(point(4100));  // same sector, but earlier: the sender restarted lower
  EXPECT_EQ(records.writes, 2u);
  EXPECT_EQ(records.record->point.offset, 4100u);
}
