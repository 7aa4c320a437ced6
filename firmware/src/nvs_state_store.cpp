// nvs_state_store.cpp: see nvs_state_store.h.
#include "nvs_state_store.h"

#include <cstring>

#include "nvs.h"

namespace {
const char* const kNamespace = "ota";
const char* const kPointKey = "resume";
const char* const kOffsetKey = "offset";
const char* const kBootKey = "boot";

bool withHandle(nvs_open_mode_t mode, nvs_handle_t& h) {
  return nvs_open(kNamespace, mode, &h) == ESP_OK;
}
}  // namespace

bool NvsStateStore::load(ota_core::ResumePoint& out) {
  nvs_handle_t h;
  if (!withHandle(NVS_READONLY, h)) return false;
  size_t len = sizeof out;
  uint32_t offset = 0;
  bool ok = nvs_get_blob(h, kPointKey, &out, &len) == ESP_OK && len == sizeof out &&
            nvs_get_u32(h, kOffsetKey, &offset) == ESP_OK;
  nvs_close(h);
  if (!ok) return false;
  out.offset = offset;
  cached_ = out;
  cachedValid_ = true;
  return true;
}

bool NvsStateStore::save(const ota_core::ResumePoint& p) {
  nvs_handle_t h;
  if (!withHandle(NVS_READWRITE, h)) return false;
  bool ok = true;
  // Rewrite the blob only when the image changes; per chunk only the offset.
  if (!cachedValid_ || std::memcmp(cached_.sha256, p.sha256, sizeof p.sha256) != 0 ||
      cached_.size != p.size) {
    ok = nvs_set_blob(h, kPointKey, &p, sizeof p) == ESP_OK;
    cached_ = p;
    cachedValid_ = ok;
  }
  ok = ok && nvs_set_u32(h, kOffsetKey, p.offset) == ESP_OK && nvs_commit(h) == ESP_OK;
  nvs_close(h);
  return ok;
}

void NvsStateStore::clear() {
  nvs_handle_t h;
  cachedValid_ = false;
  if (!withHandle(NVS_READWRITE, h)) return;
  nvs_erase_key(h, kPointKey);
  nvs_erase_key(h, kOffsetKey);
  nvs_commit(h);
  nvs_close(h);
}

bool NvsStateStore::saveBootRecord(const BootRecord& record) {
  nvs_handle_t h;
  if (!withHandle(NVS_READWRITE, h)) return false;
  bool ok = nvs_set_blob(h, kBootKey, &record, sizeof record) == ESP_OK && nvs_commit(h) == ESP_OK;
  nvs_close(h);
  return ok;
}

bool NvsStateStore::loadBootRecord(BootRecord& out) {
  nvs_handle_t h;
  if (!withHandle(NVS_READONLY, h)) return false;
  size_t len = sizeof out;
  bool ok = nvs_get_blob(h, kBootKey, &out, &len) == ESP_OK && len == sizeof out;
  nvs_close(h);
  return ok;
}

void NvsStateStore::clearBootRecord() {
  nvs_handle_t h;
  if (!withHandle(NVS_READWRITE, h)) return;
  nvs_erase_key(h, kBootKey);
  nvs_commit(h);
  nvs_close(h);
}
