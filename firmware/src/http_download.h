// http_download.h: ota_core::HttpDownloader over esp_https_ota (ESP-IDF 5.5): the HTTP download
// mode of protocol §7.3 / §8.8 on the ESP32.
#pragma once

#include "ota_core/http_download.h"

/// Downloads a URL MANIFEST's image into the next update partition with esp_https_ota
/// (partial_http_download, resumption from the bytes held), checks its SHA-256 against the
/// MANIFEST's and lets esp_https_ota_finish() validate it and switch the boot partition.
class EspHttpDownloader : public ota_core::HttpDownloader {
 public:
  /// `caPem`: the CA that signs the HTTPS server's certificate (nullptr: plain http only, which
  /// needs CONFIG_ESP_HTTPS_OTA_ALLOW_HTTP; the MANIFEST's SHA-256 still guards the bytes).
  explicit EspHttpDownloader(const char* caPem) : caPem_(caPem) {}
  ota_core::HttpResult download(const ota_core::HttpJob& job,
                                ota_core::HttpResumeKeeper& keeper) override;

 private:
  const char* caPem_;
};
