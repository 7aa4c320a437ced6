// ota_core/resume_store.h: the resume point as ONE record (SHA-256, offset, size, version and the
// flash slot it was written to) that the platform stores atomically (one NVS blob), written only
// when the image changes or the write position crosses a flash sector boundary. The receiver
// asks to resume from the saved offset rounded down to a sector (protocol §9), so a save inside
// a sector adds nothing but flash wear; and a record of another slot (the device rolled back or
// the partition table changed since) is never resumed into: esp_ota_resume() checks neither the
// rollback state nor the otadata the way esp_ota_begin() does.
#pragma once

#include <cstdint>

#include "ota_core/platform.h"

namespace ota_core {

/// Which flash area an image was written to (partition address and size on the ESP32).
struct SlotId {
  uint32_t address = 0;
  uint32_t size = 0;
};

/// The record the platform stores in one atomic write.
struct ResumeRecord {
  /// Layout version of this struct; a record of another layout is not resumed.
  uint32_t layout = 0;
  ResumePoint point;
  SlotId slot;
};

/// Current ResumeRecord layout (bump when ResumeRecord or ResumePoint changes).
constexpr uint32_t kResumeRecordLayout = 1;

/// Raw persistent storage of one ResumeRecord (nvs_set_blob + nvs_commit on the ESP32).
class RecordStore {
 public:
  virtual ~RecordStore() = default;
  virtual bool read(ResumeRecord& out) = 0;
  /// Writes the whole record at once; a power cut leaves the old or the new one.
  virtual bool write(const ResumeRecord& record) = 0;
  virtual void erase() = 0;
};

/// True when `next` must be written given that `stored` is what storage holds: another image or
/// slot, a position that moved backwards, or one in another flash sector.
bool resumeRecordNeedsWrite(const ResumeRecord& stored, const ResumeRecord& next);

/// A StateStore that keeps the resume point in one record for the slot `slot`.
class ResumeRecordStore : public StateStore {
 public:
  ResumeRecordStore(RecordStore& records, SlotId slot) : records_(records), slot_(slot) {}
  /// False (and the record is erased) when the stored record belongs to another slot.
  bool load(ResumePoint& out) override;
  /// Writes only when resumeRecordNeedsWrite() says so; true when storage holds `point` or an
  /// earlier position in the same sector.
  bool save(const ResumePoint& point) override;
  void clear() override;
  /// Record writes so far (for tests and logs).
  uint32_t writes() const { return writes_; }

 private:
  RecordStore& records_;
  SlotId slot_;
  ResumeRecord stored_;
  bool haveStored_ = false;
  uint32_t writes_ = 0;
};

}  // namespace ota_core
