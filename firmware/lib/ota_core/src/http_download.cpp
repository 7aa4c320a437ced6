// http_download.cpp: the decisions of HTTP download mode (protocol §7.3, §8.8); see the header.
#include "ota_core/http_download.h"

#include <cstring>

namespace ota_core {
namespace {

bool startsWith(Bytes text, const char* prefix) {
  size_t n = std::strlen(prefix);
  return text.size >= n && std::memcmp(text.data, prefix, n) == 0;
}

void copyText(char* out, size_t capacity, const char* text) {
  size_t n = std::strlen(text);
  if (n >= capacity) n = capacity - 1;
  std::memcpy(out, text, n);
  out[n] = '\0';
}

}  // namespace

const char* toString(UrlProblem problem) {
  switch (problem) {
    case UrlProblem::NONE: return "url can be fetched";
    case UrlProblem::EMPTY: return "url is empty";
    case UrlProblem::TOO_LONG: return "url is longer than MAX_URL_BYTES";
    case UrlProblem::BAD_SCHEME: return "url is not http:// or https://";
    case UrlProblem::NO_HOST: return "url names no host";
    case UrlProblem::BAD_CHARACTER: return "url holds whitespace, a control or a non-ASCII byte";
  }
  return "url cannot be fetched";
}

UrlProblem checkDownloadUrl(Bytes url) {
  if (url.size == 0) return UrlProblem::EMPTY;
  if (url.size > kMaxUrlBytes) return UrlProblem::TOO_LONG;
  for (size_t i = 0; i < url.size; ++i) {
    if (url.data[i] <= 0x20 || url.data[i] >= 0x7F) return UrlProblem::BAD_CHARACTER;
  }
  size_t hostAt;
  if (startsWith(url, "http://")) {
    hostAt = 7;
  } else if (startsWith(url, "https://")) {
    hostAt = 8;
  } else {
    return UrlProblem::BAD_SCHEME;
  }
  if (hostAt >= url.size) return UrlProblem::NO_HOST;
  uint8_t first = url.data[hostAt];
  if (first == '/' || first == '?' || first == '#' || first == ':' || first == '@') {
    return UrlProblem::NO_HOST;
  }
  return UrlProblem::NONE;
}

HttpFailureAction onHttpFailure(int httpStatus, uint32_t failuresInARow) {
  if (failuresInARow >= kMaxHttpAttempts) return HttpFailureAction::GIVE_UP;
  if (httpStatus == 403 || httpStatus == 404 || httpStatus == 410) {
    return HttpFailureAction::ASK_AGAIN;
  }
  return HttpFailureAction::RETRY_WITH_RANGE;
}

uint32_t idfResumeOffset(uint32_t held, bool flashEncrypted) {
  if (held < kIdfMinResumeBytes) return 0;
  return flashEncrypted ? (held & ~static_cast<uint32_t>(0xF)) : held;
}

HttpResumeKeeper::HttpResumeKeeper(StateStore& store, const HttpJob& job, const char* product,
                                   const char* version)
    : store_(store), saved_(job.from) {
  std::memcpy(point_.sha256, job.sha256, kSha256Bytes);
  point_.offset = job.from;
  point_.size = job.size;
  point_.kind = job.kind;
  copyText(point_.product, sizeof point_.product, product);
  copyText(point_.version, sizeof point_.version, version);
}

void HttpResumeKeeper::written(uint32_t total) {
  if (total > point_.size) total = point_.size;
  uint32_t sector = total - total % kFlashSectorBytes;
  if (sector < saved_ + kHttpResumeSaveBytes && total != point_.size) return;
  if (sector <= saved_) return;
  point_.offset = sector;
  if (store_.save(point_)) saved_ = sector;
}

void HttpResumeKeeper::flush(uint32_t total) {
  if (total > point_.size) total = point_.size;
  uint32_t sector = total - total % kFlashSectorBytes;
  if (sector <= saved_) return;
  point_.offset = sector;
  if (store_.save(point_)) saved_ = sector;
}

}  // namespace ota_core
