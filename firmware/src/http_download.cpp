// http_download.cpp: the HTTP download of protocol §8.8 with esp_https_ota (ESP-IDF v5.5.3).
//
// How esp_https_ota resumes (components/esp_https_ota/src/esp_https_ota.c at v5.5.3):
// - esp_https_ota_begin(): with `ota_resumption` and `ota_image_bytes_written` >=
//   DEFAULT_OTA_BUF_SIZE it starts at that offset (`binary_file_len`, rounded down to 16 bytes
//   under flash encryption) and its state is ESP_HTTPS_OTA_RESUME; below it, from 0.
// - With `partial_http_download` it first sends HEAD (and wants 200) for the image length, then
//   asks `Range: bytes={binary_file_len}-{+max_http_request_size-1}` and, in
//   esp_https_ota_perform(), the next range each time one is read; a 416 on a resumed begin
//   makes it start again from 0.
// - ESP_HTTPS_OTA_RESUME calls esp_ota_resume(), which does NOT run the image header check
//   (esp_ota_verify_chip_id) that ESP_HTTPS_OTA_BEGIN runs on the first bytes: resumeHeaderOk()
//   below runs that check on the bytes already in the partition before a resume. Nor does
//   esp_ota_resume() (app_update/esp_ota_ops.c) refuse while the running image is
//   PENDING_VERIFY or invalidate the otadata slot it overwrites, as esp_ota_begin() does:
//   otaResumeGuard() (esp_ota_errors.h, shared with EspOtaSink::resume) does both first.
// - Errors: esp_https_ota_begin/perform return ESP_FAIL (failed read, closed connection,
//   unexpected HTTP status) or esp_http_client's ESP_ERR_HTTP_* for transport trouble, and pass
//   esp_ota_begin/resume/write's ESP_ERR_OTA_* / flash errors and esp_ota_verify_chip_id/
//   _chip_revision's ESP_ERR_INVALID_VERSION through unchanged. Only the first kind is worth
//   another request; the others end the download with the STATUS EspOtaSink would give.
// The offset rule, the failure actions and the resume point bookkeeping are ota_core's
// (http_download.h), unit-tested on the host; this file only moves bytes.
#include "http_download.h"

#include <cstring>

#include "esp_app_format.h"
#include "esp_flash_encrypt.h"
#include "esp_http_client.h"
#include "esp_https_ota.h"
#include "esp_log.h"
#include "esp_ota_errors.h"
#include "esp_ota_ops.h"
#include "esp_partition.h"
#include "ota_core/crypto.h"

namespace {

const char* const kTag = "ota_http";
/// Network timeout of each HTTP request.
constexpr int kHttpTimeoutMs = 10000;
/// Bytes asked per request (partial_http_download): a cut costs at most this much again.
constexpr int kHttpRequestBytes = 64 * 1024;

/// The HTTP status of the last response, taken from the client's events.
struct LastStatus {
  int code = 0;
};

esp_err_t onHttpEvent(esp_http_client_event_t* event) {
  if (event->event_id == HTTP_EVENT_ON_HEADER && event->user_data != nullptr) {
    static_cast<LastStatus*>(event->user_data)->code = esp_http_client_get_status_code(event->client);
  }
  return ESP_OK;
}

/// The IDF header check (what esp_https_ota runs in ESP_HTTPS_OTA_BEGIN) on the first bytes
/// already written to `part`, before resuming after them.
bool resumeHeaderOk(const esp_partition_t* part) {
  esp_image_header_t header;
  if (esp_partition_read(part, 0, &header, sizeof header) != ESP_OK) return false;
  return header.magic == ESP_IMAGE_HEADER_MAGIC && header.chip_id == CONFIG_IDF_FIRMWARE_CHIP_ID;
}

/// SHA-256 of the first `size` bytes of `part`.
bool partitionSha256(const esp_partition_t* part, uint32_t size, uint8_t out[ota_core::kSha256Bytes]) {
  static uint8_t block[ota_core::kRehashBlockBytes];
  ota_core::Sha256 hash;
  hash.begin();
  for (uint32_t off = 0; off < size;) {
    uint32_t n = size - off < sizeof block ? size - off : sizeof block;
    if (esp_partition_read(part, off, block, n) != ESP_OK) return false;
    hash.update(block, n);
    off += n;
  }
  hash.finish(out);
  return true;
}

ota_core::HttpResult failed(ota_core::StatusCode status, const char* detail, uint32_t written) {
  ota_core::HttpResult r;
  r.status = status;
  r.detail = detail;
  r.bytesWritten = written;
  return r;
}

/// Whether an esp_https_ota_begin/perform error is the connection's or the server's (worth
/// another request), not the image's or the flash's (see the file comment).
bool isTransportError(esp_err_t err) {
  return err == ESP_FAIL || (err > ESP_ERR_HTTP_BASE && err < ESP_ERR_HTTP_BASE + 0x100);
}

/// The STATUS of an error that is not a transport error: the mapping EspOtaSink uses.
ota_core::StatusCode otaFailureStatus(esp_err_t err) {
  if (otaErrorToResult(err) == ota_core::SinkResult::IMAGE_INVALID) return ota_core::StatusCode::IMAGE_INVALID;
  return ota_core::StatusCode::FLASH_ERROR;
}

/// Bytes gained over `from` (none when the download started again below it).
uint32_t gained(uint32_t reached, uint32_t from) { return reached > from ? reached - from : 0; }

}  // namespace

ota_core::HttpResult EspHttpDownloader::download(const ota_core::HttpJob& job,
                                                 ota_core::HttpResumeKeeper& keeper) {
  using ota_core::HttpFailureAction;
  using ota_core::StatusCode;
  if (job.kind != ota_core::ImageKind::ESP32_APP) {
    return failed(StatusCode::IMAGE_INVALID, "HTTP download takes application images only", 0);
  }
  // esp_https_ota_begin() writes to esp_ota_get_next_update_partition(NULL) when no staging
  // partition is given: the same one checked and hashed here.
  const esp_partition_t* part = esp_ota_get_next_update_partition(nullptr);
  if (part == nullptr) return failed(StatusCode::FLASH_ERROR, "no update partition", 0);
  uint32_t held = job.from;
  if (held > 0 && !resumeHeaderOk(part)) {
    ESP_LOGW(kTag, "bytes held fail the image header check: downloading from 0");
    held = 0;
  }
  uint32_t failures = job.failuresBefore;  // §8.8: the row goes on across refused URLs
  for (;;) {
    LastStatus status;
    esp_http_client_config_t http = {};
    http.url = job.url;
    http.cert_pem = caPem_;
    http.timeout_ms = kHttpTimeoutMs;
    http.event_handler = onHttpEvent;
    http.user_data = &status;
    http.keep_alive_enable = true;
    esp_https_ota_config_t config = {};
    config.http_config = &http;
    config.partial_http_download = true;
    config.max_http_request_size = kHttpRequestBytes;
    config.ota_resumption = true;
    config.ota_image_bytes_written = ota_core::idfResumeOffset(held, esp_flash_encryption_enabled());
    uint32_t start = config.ota_image_bytes_written;
    // esp_https_ota_begin() resumes (ESP_HTTPS_OTA_RESUME → esp_ota_resume) from a nonzero
    // offset; its own esp_ota_begin() fallback from 0 makes the same checks, so this is safe
    // whichever it takes.
    if (start > 0) {
      esp_err_t guard = otaResumeGuard(kTag);
      if (guard != ESP_OK) {
        return failed(otaFailureStatus(guard), "cannot resume into the update partition", 0);
      }
    }
    ESP_LOGI(kTag, "GET %.*s... from %lu", 48, job.url, static_cast<unsigned long>(start));
    esp_https_ota_handle_t ota = nullptr;
    esp_err_t err = esp_https_ota_begin(&config, &ota);
    uint32_t reached = start;
    if (err == ESP_OK && esp_https_ota_get_image_size(ota) != static_cast<int>(job.size)) {
      esp_https_ota_abort(ota);
      return failed(StatusCode::ABORTED, "the server's image size differs from the MANIFEST's", 0);
    }
    if (err == ESP_OK) {
      do {
        err = esp_https_ota_perform(ota);
        int read = esp_https_ota_get_image_len_read(ota);
        if (read > 0) {
          reached = static_cast<uint32_t>(read);
          keeper.written(reached);
        }
      } while (err == ESP_ERR_HTTPS_OTA_IN_PROGRESS);
      if (err == ESP_OK && esp_https_ota_is_complete_data_received(ota)) {
        uint8_t digest[ota_core::kSha256Bytes];
        if (!partitionSha256(part, job.size, digest)) {
          esp_https_ota_abort(ota);
          return failed(StatusCode::FLASH_ERROR, "cannot read back the partition", gained(reached, job.from));
        }
        if (std::memcmp(digest, job.sha256, sizeof digest) != 0) {
          esp_https_ota_abort(ota);
          return failed(StatusCode::HASH_MISMATCH, "sha256 differs", gained(reached, job.from));
        }
        // esp_ota_end() validates the image; then the boot partition is switched.
        err = esp_https_ota_finish(ota);
        if (err != ESP_OK) {
          ESP_LOGE(kTag, "esp_https_ota_finish: %s", esp_err_to_name(err));
          StatusCode code = otaFailureStatus(err);
          return failed(code, code == StatusCode::IMAGE_INVALID ? "image validation failed"
                                                                 : "cannot finish the update partition",
                        gained(reached, job.from));
        }
        ota_core::HttpResult ok;
        ok.status = StatusCode::VERIFIED;
        ok.bytesWritten = gained(reached, job.from);
        return ok;
      }
      esp_https_ota_abort(ota);
    }
    if (err != ESP_OK && !isTransportError(err)) {
      // The image (chip id, revision, first byte) or the flash refused it: a new request would
      // bring the same bytes to the same end.
      ESP_LOGE(kTag, "download ended at %lu: %s", static_cast<unsigned long>(reached), esp_err_to_name(err));
      return failed(otaFailureStatus(err), esp_err_to_name(err), gained(reached, job.from));
    }
    // The bytes written stay in the partition: the next fetch continues after them.
    if (reached > held) {
      held = reached;
      failures = 0;
    }
    ++failures;
    ESP_LOGW(kTag, "download stopped at %lu (%s, HTTP %d), attempt %lu",
             static_cast<unsigned long>(held), esp_err_to_name(err), status.code,
             static_cast<unsigned long>(failures));
    switch (ota_core::onHttpFailure(status.code, failures)) {
      case HttpFailureAction::RETRY_WITH_RANGE:
        continue;
      case HttpFailureAction::ASK_AGAIN: {
        keeper.written(held);
        ota_core::HttpResult again;
        again.askAgain = true;
        again.bytesWritten = gained(held, job.from);
        again.failuresInARow = failures;
        return again;
      }
      case HttpFailureAction::GIVE_UP:
        return failed(StatusCode::ABORTED, "HTTP download failed kMaxHttpAttempts times in a row",
                      gained(held, job.from));
    }
  }
}
