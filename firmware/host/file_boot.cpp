// file_boot.cpp: see file_boot.h.
#include "file_boot.h"

#include <cstdio>

namespace ota_host {
namespace {

std::string readLine(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return "";
  char buf[32] = {};
  bool ok = std::fgets(buf, sizeof buf, f) != nullptr;
  std::fclose(f);
  std::string s = ok ? buf : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

bool writeLine(const std::string& path, const std::string& line) {
  std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr) return false;
  std::fprintf(f, "%s\n", line.c_str());
  std::fclose(f);
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

bool exists(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return false;
  std::fclose(f);
  return true;
}

}  // namespace

bool FileBootControl::pendingVerify() { return readLine(dir_ + "/pending") == runningSlot(); }

const char* FileBootControl::runningSlot() {
  running_ = "slot_" + std::to_string(flash_.bootSlot());
  return running_.c_str();
}

bool FileBootControl::markValid() {
  std::remove((dir_ + "/pending").c_str());
  std::remove((dir_ + "/invalid_" + runningSlot()).c_str());
  return true;
}

bool FileBootControl::rollback() {
  std::string other = "slot_" + std::to_string(flash_.targetSlot());
  if (exists(dir_ + "/invalid_" + other)) return false;
  std::remove((dir_ + "/pending").c_str());
  return writeLine(dir_ + "/invalid_" + runningSlot(), "invalid") &&
         writeLine(dir_ + "/boot", other);
}

bool FileBootStore::loadBootRecord(ota_core::BootRecord& out) {
  std::FILE* f = std::fopen(path_.c_str(), "rb");
  if (f == nullptr) return false;
  bool ok = std::fread(&out, sizeof out, 1, f) == 1;
  std::fclose(f);
  return ok;
}

bool FileBootStore::saveBootRecord(const ota_core::BootRecord& record) {
  std::string tmp = path_ + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) return false;
  bool ok = std::fwrite(&record, sizeof record, 1, f) == 1;
  ok = std::fclose(f) == 0 && ok;
  return ok && std::rename(tmp.c_str(), path_.c_str()) == 0;
}

void FileBootStore::clearBootRecord() { std::remove(path_.c_str()); }

}  // namespace ota_host
