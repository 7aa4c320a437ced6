// nvs_state_store.cpp: see nvs_state_store.h. NVS semantics from ESP-IDF v5.5.3
// components/nvs_flash: Storage::writeItem (src/nvs_storage.cpp) writes the new blob (with a
// toggled version) before it deletes the previous one, so a power cut leaves the old or the new
// record whole; nvs_commit (include/nvs.h) makes the write durable.
#include "nvs_state_store.h"

#include "esp_log.h"
#include "nvs.h"

namespace {
const char* const kTag = "ota_nvs";
const char* const kNamespace = "ota";
/// The resume record (one blob). Keys of earlier firmware ("resume", "offset") are erased.
const char* const kResumeKey = "resume_rec";
const char* const kLegacyKeys[] = {"resume", "offset"};
const char* const kBootKey = "boot";

/// Reads blob `key` into `out` when it has exactly sizeof(T) bytes.
template <typename T>
bool readBlob(const char* key, T& out) {
  nvs_handle_t h;
  if (nvs_open(kNamespace, NVS_READONLY, &h) != ESP_OK) return false;
  size_t len = sizeof out;
  bool ok = nvs_get_blob(h, key, &out, &len) == ESP_OK && len == sizeof out;
  nvs_close(h);
  return ok;
}

template <typename T>
bool writeBlob(const char* key, const T& value) {
  nvs_handle_t h;
  if (nvs_open(kNamespace, NVS_READWRITE, &h) != ESP_OK) return false;
  esp_err_t err = nvs_set_blob(h, key, &value, sizeof value);
  if (err == ESP_OK) err = nvs_commit(h);
  nvs_close(h);
  if (err != ESP_OK) ESP_LOGW(kTag, "cannot write \"%s\": %s", key, esp_err_to_name(err));
  return err == ESP_OK;
}

void eraseKeys(const char* const* keys, size_t count) {
  nvs_handle_t h;
  if (nvs_open(kNamespace, NVS_READWRITE, &h) != ESP_OK) return;
  for (size_t i = 0; i < count; ++i) nvs_erase_key(h, keys[i]);  // ESP_ERR_NVS_NOT_FOUND is fine
  nvs_commit(h);
  nvs_close(h);
}
}  // namespace

bool NvsRecordStore::read(ota_core::ResumeRecord& out) { return readBlob(kResumeKey, out); }

bool NvsRecordStore::write(const ota_core::ResumeRecord& record) {
  return writeBlob(kResumeKey, record);
}

void NvsRecordStore::erase() {
  const char* const keys[] = {kResumeKey, kLegacyKeys[0], kLegacyKeys[1]};
  eraseKeys(keys, sizeof keys / sizeof keys[0]);
}

bool NvsBootStore::loadBootRecord(ota_core::BootRecord& out) { return readBlob(kBootKey, out); }

bool NvsBootStore::saveBootRecord(const ota_core::BootRecord& record) {
  return writeBlob(kBootKey, record);
}

void NvsBootStore::clearBootRecord() {
  const char* const keys[] = {kBootKey};
  eraseKeys(keys, 1);
}
