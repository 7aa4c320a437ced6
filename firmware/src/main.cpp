// main.cpp: app_main of the mqtt-ota receiver. Wires the portable core (lib/ota_core) to the
// ESP-IDF: Wi-Fi station, esp-mqtt (MQTT 5), the OTA partition sink and NVS. After an update it
// restarts into the new image, which runs a self-test (Wi-Fi up, broker reached, subscriptions
// acknowledged) while PENDING_VERIFY and then marks itself valid, or rolls back; the outcome is
// reported as STATUS BOOTED / ROLLED_BACK on {p}/dev/{id}/status.
#include <cstdio>
#include <cstring>

#include "esp_app_desc.h"
#include "esp_log.h"
#include "esp_mac.h"
#include "esp_ota_ops.h"
#include "esp_system.h"
#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "freertos/event_groups.h"
#include "nvs_flash.h"

#include "esp_ota_sink.h"
#include "mqtt_link.h"
#include "nvs_state_store.h"
#include "ota_config.h"
#include "ota_core/crypto.h"
#include "ota_core/receiver.h"
#include "wifi_station.h"

namespace {

const char* const kTag = "ota_app";
constexpr EventBits_t kReadyBit = BIT0;
/// Time for the final STATUS VERIFIED to reach the broker before the restart.
constexpr uint32_t kRestartDelayMs = 1000;
constexpr uint32_t kWifiTimeoutMs = 30000;

#if CONFIG_OTA_EMBED_SIGNING_KEY
extern const char kSigningPem[] asm("_binary_signing_pub_pem_start");
#endif

class EspClock : public ota_core::Clock {
 public:
  uint32_t nowMs() override { return static_cast<uint32_t>(esp_timer_get_time() / 1000); }
};

/// The application: owns the receiver and reacts to link events (all in the MQTT task).
class App : public MqttLinkListener {
 public:
  App(const char* deviceId, const char* version, bool pendingVerify)
      : pendingVerify_(pendingVerify),
        link_(deviceId, dataTopicFor(deviceId), errorTopicFor(deviceId), *this),
        rx_(makeConfig(deviceId, version), sink_, link_, store_, clock_) {
    ready_ = xEventGroupCreate();
  }

  bool start() { return rx_.configValid() && link_.start(); }
  bool waitReady(uint32_t timeoutMs) {
    return (xEventGroupWaitBits(ready_, kReadyBit, pdFALSE, pdTRUE, pdMS_TO_TICKS(timeoutMs)) &
            kReadyBit) != 0;
  }

  void onReady() override {
    if (!bootReported_) {
      reportBoot();
      bootReported_ = true;
      xEventGroupSetBits(ready_, kReadyBit);
    }
    if (rx_.state() == ota_core::State::IDLE || rx_.state() == ota_core::State::FAILED) {
      lastCheckMs_ = clock_.nowMs();
      rx_.start();
    }
  }

  void onMessage(const ota_core::InboundMessage& message) override { rx_.onMessage(message); }

  void onTick(uint32_t nowMs) override {
    rx_.tick(nowMs);
    ota_core::State s = rx_.state();
    if (s == ota_core::State::VERIFIED && !restartScheduled_) {
      // The core already switched the boot partition; remember what we switched to so the
      // next boot can report BOOTED or ROLLED_BACK.
      BootRecord record = {};
      std::memcpy(record.sha256, rx_.outcome().sha256, sizeof record.sha256);
      std::snprintf(record.version, sizeof record.version, "%s", rx_.outcome().version);
      std::snprintf(record.label, sizeof record.label, "%s", sink_.partition()->label);
      NvsStateStore::saveBootRecord(record);
      restartScheduled_ = true;
      restartAtMs_ = nowMs + kRestartDelayMs;
      ESP_LOGI(kTag, "image %s verified, restarting", record.version);
    }
    if (restartScheduled_ && static_cast<int32_t>(nowMs - restartAtMs_) >= 0 &&
        (link_.pendingPublishes() == 0 ||
         static_cast<int32_t>(nowMs - restartAtMs_) >= static_cast<int32_t>(3 * kRestartDelayMs))) {
      esp_restart();
    }
    if ((s == ota_core::State::FAILED || s == ota_core::State::IDLE) && bootReported_ &&
        CONFIG_OTA_CHECK_INTERVAL_S > 0 &&
        nowMs - lastCheckMs_ >= static_cast<uint32_t>(CONFIG_OTA_CHECK_INTERVAL_S) * 1000u) {
      lastCheckMs_ = nowMs;
      rx_.start();
    }
  }

 private:
  static const char* dataTopicFor(const char* id) {
    static char topic[ota_core::kMaxOwnTopicBytes];
    std::snprintf(topic, sizeof topic, "%s/dev/%s/data", CONFIG_OTA_TOPIC_PREFIX, id);
    return topic;
  }
  static const char* errorTopicFor(const char* id) {
    static char topic[ota_core::kMaxOwnTopicBytes];
    std::snprintf(topic, sizeof topic, "%s/dev/%s/error", CONFIG_OTA_TOPIC_PREFIX, id);
    return topic;
  }

  ota_core::ReceiverConfig makeConfig(const char* deviceId, const char* version) {
#if CONFIG_OTA_EMBED_SIGNING_KEY
    if (!verifier_.loadPublicKey(reinterpret_cast<const uint8_t*>(kSigningPem),
                                 std::strlen(kSigningPem) + 1)) {
      ESP_LOGE(kTag, "certs/signing_pub.pem is not a P-256 public key: refusing every image");
    }
#endif
    ota_core::ReceiverConfig c;
    c.prefix = CONFIG_OTA_TOPIC_PREFIX;
    c.deviceId = deviceId;
    c.product = CONFIG_OTA_PRODUCT;
    c.currentVersion = version;
    c.wantedVersion = "latest";
    c.chunkSize = CONFIG_OTA_CHUNK_SIZE;
    c.window = CONFIG_OTA_WINDOW;
    c.maxChunkBytes = CONFIG_OTA_CHUNK_SIZE;
    c.mqtt5 = true;
    c.acceptEsp32App = true;
    c.acceptGenericFile = false;
    c.verifier = &verifier_;
#if CONFIG_OTA_EMBED_SIGNING_KEY
    // A key that failed to load still means "signatures required".
    c.requireSignature = true;
#endif
    return c;
  }

  /// Runs once per boot, after the broker round trip that completes the self-test.
  void reportBoot() {
    const esp_partition_t* running = esp_ota_get_running_partition();
    BootRecord record = {};
    bool haveRecord = NvsStateStore::loadBootRecord(record);
    ota_core::StatusCode code = ota_core::StatusCode::BOOTED;
    const char* detail = "self-test passed";
    if (pendingVerify_) {
      esp_err_t err = esp_ota_mark_app_valid_cancel_rollback();
      ESP_LOGI(kTag, "self-test passed, marked valid: %s", esp_err_to_name(err));
    } else if (!haveRecord) {
      return;  // an ordinary boot: nothing to report
    } else if (std::strcmp(record.label, running->label) != 0) {
      code = ota_core::StatusCode::ROLLED_BACK;
      detail = "new image failed its self-test";
    }
    if (!haveRecord) {
      std::snprintf(record.version, sizeof record.version, "%s", esp_app_get_description()->version);
    }
    uint8_t buf[ota_core::kMaxStatusBytes];
    size_t n = ota_core::encodeBootStatus(code, record.sha256, record.version, detail, buf, sizeof buf);
    char topic[ota_core::kMaxOwnTopicBytes];
    std::snprintf(topic, sizeof topic, "%s", rx_.statusTopic());
    if (n != 0) link_.publish(topic, buf, n, nullptr, ota_core::Bytes{});
    NvsStateStore::clearBootRecord();
    ESP_LOGI(kTag, "reported %s for %s", ota_core::toString(code), record.version);
  }

  bool pendingVerify_;
  bool bootReported_ = false;
  bool restartScheduled_ = false;
  uint32_t restartAtMs_ = 0;
  uint32_t lastCheckMs_ = 0;
  EventGroupHandle_t ready_ = nullptr;
  EspOtaSink sink_;
  NvsStateStore store_;
  EspClock clock_;
  ota_core::SignatureVerifier verifier_;
  MqttLink link_;
  ota_core::Receiver rx_;
};

/// CONFIG_OTA_DEVICE_ID, or "esp32-" + the station MAC when it is empty.
const char* deviceId() {
  static char id[ota_core::kMaxDeviceIdBytes + 1];
  if (CONFIG_OTA_DEVICE_ID[0] != '\0') {
    std::snprintf(id, sizeof id, "%s", CONFIG_OTA_DEVICE_ID);
  } else {
    uint8_t mac[6] = {};
    esp_read_mac(mac, ESP_MAC_WIFI_STA);
    std::snprintf(id, sizeof id, "esp32-%02x%02x%02x%02x%02x%02x", mac[0], mac[1], mac[2], mac[3],
                  mac[4], mac[5]);
  }
  return id;
}

}  // namespace

extern "C" void app_main(void) {
  esp_err_t err = nvs_flash_init();
  if (err == ESP_ERR_NVS_NO_FREE_PAGES || err == ESP_ERR_NVS_NEW_VERSION_FOUND) {
    ESP_ERROR_CHECK(nvs_flash_erase());
    err = nvs_flash_init();
  }
  ESP_ERROR_CHECK(err);

  const esp_partition_t* running = esp_ota_get_running_partition();
  esp_ota_img_states_t state = ESP_OTA_IMG_UNDEFINED;
  bool pendingVerify = esp_ota_get_state_partition(running, &state) == ESP_OK &&
                       state == ESP_OTA_IMG_PENDING_VERIFY;
  const char* version = esp_app_get_description()->version;
  const char* id = deviceId();
  ESP_LOGI(kTag, "device %s, version %s, running %s%s", id, version, running->label,
           pendingVerify ? " (pending verify)" : "");

  // Constructed once, never freed: every buffer of the transfer lives inside (no heap later).
  static App app(id, version, pendingVerify);
  bool wifiOk = wifiStationStart(CONFIG_OTA_WIFI_SSID, CONFIG_OTA_WIFI_PASSWORD, kWifiTimeoutMs);
  bool started = app.start();
  if (pendingVerify) {
    bool ok = wifiOk && started &&
              app.waitReady(static_cast<uint32_t>(CONFIG_OTA_SELFTEST_TIMEOUT_S) * 1000u);
    if (!ok) {
      ESP_LOGE(kTag, "self-test failed (wifi %d, mqtt %d): rolling back", wifiOk, started);
      esp_ota_mark_app_invalid_rollback_and_reboot();
    }
  }
  // app_main returns; the MQTT task and the tick timer drive the receiver from here on.
}
