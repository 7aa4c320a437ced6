// resume_store.cpp: see resume_store.h.
#include "ota_core/resume_store.h"

#include <cstring>

namespace ota_core {

bool resumeRecordNeedsWrite(const ResumeRecord& stored, const ResumeRecord& next) {
  const ResumePoint& a = stored.point;
  const ResumePoint& b = next.point;
  bool sameImage = std::memcmp(a.sha256, b.sha256, sizeof a.sha256) == 0 && a.size == b.size &&
                   a.kind == b.kind && std::strcmp(a.product, b.product) == 0 &&
                   std::strcmp(a.version, b.version) == 0;
  bool sameSlot = stored.slot.address == next.slot.address && stored.slot.size == next.slot.size;
  return stored.layout != next.layout || !sameImage || !sameSlot || b.offset < a.offset ||
         b.offset / kFlashSectorBytes != a.offset / kFlashSectorBytes;
}

bool ResumeRecordStore::load(ResumePoint& out) {
  ResumeRecord r;
  if (!records_.read(r)) return false;
  if (r.layout != kResumeRecordLayout || r.slot.address != slot_.address ||
      r.slot.size != slot_.size || r.point.offset > r.point.size || r.point.size > slot_.size) {
    // Written for another slot (or by another firmware layout): its bytes are not where the
    // next write goes. Start fresh rather than resume into the wrong partition.
    records_.erase();
    haveStored_ = false;
    return false;
  }
  r.point.product[sizeof r.point.product - 1] = '\0';
  r.point.version[sizeof r.point.version - 1] = '\0';
  stored_ = r;
  haveStored_ = true;
  out = r.point;
  return true;
}

bool ResumeRecordStore::save(const ResumePoint& point) {
  ResumeRecord next;
  next.layout = kResumeRecordLayout;
  next.point = point;
  next.slot = slot_;
  if (haveStored_ && !resumeRecordNeedsWrite(stored_, next)) return true;
  ++writes_;
  if (!records_.write(next)) {
    haveStored_ = false;  // unknown what storage holds now: write again next time
    return false;
  }
  stored_ = next;
  haveStored_ = true;
  return true;
}

void ResumeRecordStore::clear() {
  records_.erase();
  haveStored_ = false;
}

}  // namespace ota_core
