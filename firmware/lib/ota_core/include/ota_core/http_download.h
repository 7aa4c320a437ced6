// ota_core/http_download.h: the decisions of HTTP download mode (protocol §7.3, §8.8) that do not
// depend on ESP-IDF: whether a MANIFEST's url can be fetched, where a download resumes, how often
// its resume point is saved, and what a failed fetch leads to. The platform glue that moves the
// bytes (firmware/src/http_download.cpp: esp_https_ota) implements HttpDownloader; the receiver
// hands it one HttpJob per URL MANIFEST and turns its HttpResult into a STATUS.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ota_core/codec.h"
#include "ota_core/limits.h"
#include "ota_core/platform.h"

namespace ota_core {

/// Fetches of one download in a row without a byte of progress before the device gives up with
/// STATUS ABORTED (protocol §8.8 MAX_HTTP_ATTEMPTS; the simulator's src/sim/limits.ts agrees).
constexpr uint32_t kMaxHttpAttempts = 3;
/// The resume point of a download is saved each time this many more bytes are written (and at a
/// sector boundary): NVS wears with every write, and at most this much is fetched again after a
/// power cut.
constexpr uint32_t kHttpResumeSaveBytes = 64 * 1024;
/// esp_https_ota resumes only from at least its buffer size (DEFAULT_OTA_BUF_SIZE, 1024 in IDF
/// v5.5.3 esp_https_ota.c: "We allow resumption only if we have minimum buffer size already
/// written to flash"); below it the download starts again from 0.
constexpr uint32_t kIdfMinResumeBytes = 1024;

/// Why a MANIFEST `url` cannot be fetched (protocol §8.8).
enum class UrlProblem : uint8_t {
  NONE = 0,
  EMPTY,
  TOO_LONG,       ///< over kMaxUrlBytes
  BAD_SCHEME,     ///< not http:// or https://
  NO_HOST,        ///< nothing between the scheme and the first '/', '?' or '#'
  BAD_CHARACTER,  ///< whitespace, a control character or a byte above 0x7E
};
/// A sentence naming the problem, for the STATUS detail.
const char* toString(UrlProblem problem);

/// Checks a MANIFEST `url`: an absolute http or https URL with a host, printable ASCII only.
UrlProblem checkDownloadUrl(Bytes url);

/// One download the receiver asks of the platform: image `sha256` of `size` bytes from `url`,
/// continuing at byte `from` (0, or the MANIFEST's startOffset, which the device holds).
struct HttpJob {
  char url[kMaxUrlBytes + 1] = {};
  uint8_t sha256[kSha256Bytes] = {};
  uint32_t size = 0;
  uint32_t from = 0;
  ImageKind kind = ImageKind::ESP32_APP;
  /// Fetches in a row without a byte of progress before this download: the refused URLs of the
  /// REQUESTs that led to it (§8.8 counts them in one row). The downloader counts on from here.
  uint32_t failuresBefore = 0;
};

/// How a download ended.
struct HttpResult {
  /// VERIFIED: the whole image is written, its SHA-256 matched and it boots next. Any failure
  /// code of §5.3 otherwise (ABORTED after kMaxHttpAttempts, HASH_MISMATCH, FLASH_ERROR, ...).
  StatusCode status = StatusCode::ABORTED;
  /// The server refused the URL (403, 404, 410: an expired token, a removed image): the device
  /// asks again with its resume point instead of failing (§8.8). `status` is then ignored.
  bool askAgain = false;
  const char* detail = "";
  /// Bytes of the image written by this download (resumed bytes not counted).
  uint32_t bytesWritten = 0;
  /// Fetches in a row without a byte of progress when it ended (with askAgain: the refusal
  /// included), counted on from HttpJob::failuresBefore.
  uint32_t failuresInARow = 0;
};

/// What a failed fetch leads to (protocol §8.8).
enum class HttpFailureAction : uint8_t {
  RETRY_WITH_RANGE,  ///< a cut, a 5xx, a 416: fetch again from the bytes written
  ASK_AGAIN,         ///< 403 / 404 / 410: the URL is no good, REQUEST again for a fresh one
  GIVE_UP,           ///< kMaxHttpAttempts without progress: STATUS ABORTED
};
/// The action after the `failuresInARow`-th fetch in a row without progress failed with HTTP
/// status `httpStatus` (0: no status, the connection failed or was cut).
HttpFailureAction onHttpFailure(int httpStatus, uint32_t failuresInARow);

/// The offset esp_https_ota can resume a download at, given the bytes the device holds: below
/// kIdfMinResumeBytes it starts again from 0, and with flash encryption it resumes at a multiple
/// of 16 (IDF v5.5.3 esp_https_ota_begin: `ota_image_bytes_written & ~0xF`).
uint32_t idfResumeOffset(uint32_t held, bool flashEncrypted);

/// Keeps the resume point of a download in the StateStore as bytes arrive: rounded down to a
/// flash sector (bytes written just before a power cut may be half-programmed, §9) and saved
/// every kHttpResumeSaveBytes, so a reboot resumes where the last saved point says.
class HttpResumeKeeper {
 public:
  HttpResumeKeeper(StateStore& store, const HttpJob& job, const char* product, const char* version);
  /// `total` bytes of the image are now written (resumed bytes included).
  void written(uint32_t total);
  /// Saves the sector below `total` now, whatever kHttpResumeSaveBytes says: the download stops
  /// and the REQUEST that follows carries this resume point (§8.8: a refused URL).
  void flush(uint32_t total);
  /// The offset last saved (0 before any).
  uint32_t savedOffset() const { return saved_; }

 private:
  StateStore& store_;
  ResumePoint point_;
  uint32_t saved_ = 0;
};

/// The platform's HTTP download (esp_https_ota on the ESP32; a fake in the host tests). It runs
/// to the end in the calling task, writes the image into the update slot, keeps `keeper` told of
/// the bytes written, checks the SHA-256 against `job.sha256` and, only when it matches, makes
/// the image the one that boots next.
class HttpDownloader {
 public:
  virtual ~HttpDownloader() = default;
  virtual HttpResult download(const HttpJob& job, HttpResumeKeeper& keeper) = 0;
};

}  // namespace ota_core
