// file_state_store.cpp: see file_state_store.h. Format (one line):
//   <sha256 hex> <offset> <size> <kind> <product> <version|->
#include "file_state_store.h"

#include <cstdio>
#include <cstring>

namespace ota_host {

bool FileStateStore::load(ota_core::ResumePoint& out) {
  std::FILE* f = std::fopen(path_.c_str(), "r");
  if (f == nullptr) return false;
  char hex[65] = {};
  unsigned long offset = 0, size = 0;
  unsigned kind = 0;
  char product[ota_core::kMaxProductBytes + 1] = {};
  char version[ota_core::kMaxVersionBytes + 1] = {};
  int n = std::fscanf(f, "%64s %lu %lu %u %64s %32s", hex, &offset, &size, &kind, product, version);
  std::fclose(f);
  if (n != 6 || std::strlen(hex) != 64 || kind > 1) return false;
  for (size_t i = 0; i < ota_core::kSha256Bytes; ++i) {
    unsigned byte = 0;
    if (std::sscanf(hex + 2 * i, "%2x", &byte) != 1) return false;
    out.sha256[i] = static_cast<uint8_t>(byte);
  }
  out.offset = static_cast<uint32_t>(offset);
  out.size = static_cast<uint32_t>(size);
  out.kind = static_cast<ota_core::ImageKind>(kind);
  std::strcpy(out.product, product);
  std::strcpy(out.version, std::strcmp(version, "-") == 0 ? "" : version);
  return true;
}

bool FileStateStore::save(const ota_core::ResumePoint& p) {
  std::string tmp = path_ + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr) return false;
  for (uint8_t b : p.sha256) std::fprintf(f, "%02x", b);
  std::fprintf(f, " %lu %lu %u %s %s\n", static_cast<unsigned long>(p.offset),
               static_cast<unsigned long>(p.size), static_cast<unsigned>(p.kind), p.product,
               p.version[0] != '\0' ? p.version : "-");
  bool ok = std::fflush(f) == 0;
  std::fclose(f);
  ++saves_;
  return ok && std::rename(tmp.c_str(), path_.c_str()) == 0;
}

void FileStateStore::clear() { std::remove(path_.c_str()); }

}  // namespace ota_host
