// main.cpp: app_main of the mqtt-ota receiver. Wires the portable core (lib/ota_core) to the
// ESP-IDF: Wi-Fi station, esp-mqtt (MQTT 5), the OTA partition sink, NVS and FreeRTOS.
//
// Tasks: esp-mqtt's MQTT task runs MqttLink's event handler, which only copies each message into
// the Inbox (a bounded pool of preallocated slots) and returns. The receiver task ("ota_rx",
// created here) owns everything else: it blocks on the Inbox with a timeout that drives the
// Receiver's tick(), writes and hashes the image, runs the boot self-test and is the only task
// that publishes. After an update it restarts into the new image, which stays PENDING_VERIFY
// until its self-test passed (ota_core::SelfTest) and reports STATUS BOOTED / ROLLED_BACK.
#include <cstdio>
#include <cstring>

#include "esp_app_desc.h"
#include "esp_log.h"
#include "esp_mac.h"
#include "esp_ota_ops.h"
#include "esp_random.h"
#include "esp_system.h"
#include "esp_timer.h"
#include "nvs_flash.h"

#include "esp_boot_control.h"
#include "esp_ota_sink.h"
#include "http_download.h"
#include "mqtt_link.h"
#include "nvs_state_store.h"
#include "os_freertos.h"
#include "ota_config.h"
#include "ota_core/crypto.h"
#include "ota_core/inbox.h"
#include "ota_core/receiver.h"
#include "ota_core/receiver_task.h"
#include "ota_core/resume_store.h"
#include "ota_core/self_test.h"
#include "ota_core/topics.h"
#include "wifi_station.h"

namespace {

const char* const kTag = "ota_app";
/// Time for the final STATUS VERIFIED to reach the broker before the restart.
constexpr uint32_t kRestartDelayMs = 1000;
constexpr uint32_t kWifiTimeoutMs = 30000;
/// Inbox slots: one being written to flash while the next chunk arrives, at least. When all are
/// taken the MQTT task waits up to ota_core::kInboxSlotWaitMs, then drops (inbox.h).
constexpr size_t kInboxSlots = CONFIG_OTA_INBOX_SLOTS;
/// A slot holds one whole CHUNK message of the configured chunk size.
constexpr size_t kSlotBytes = ota_core::kChunkHeaderBytes + CONFIG_OTA_CHUNK_SIZE;
/// The receiver task verifies an ECDSA signature once per image (mbedTLS needs a few KiB).
constexpr uint32_t kReceiverStackBytes = 8192;
/// Just above esp-mqtt's task (MqttLink::kTaskPriority). This task blocks on the inbox
/// queue and in the flash driver (which yields during erases), so the MQTT task still copies
/// the next chunk meanwhile; but when the MQTT task gives back the client's API lock, this task
/// must get it before the MQTT task takes it again for the next packet (a FreeRTOS mutex wakes
/// its waiter without handing it over), or an ACK could wait behind a whole chunk's copy.
constexpr uint32_t kReceiverPriority = MqttLink::kTaskPriority + 1;

#if CONFIG_OTA_EMBED_SIGNING_KEY
extern const char kSigningPem[] asm("_binary_signing_pub_pem_start");
#endif

#if CONFIG_OTA_EMBED_CA_CERT
extern const char kHttpCaPem[] asm("_binary_ca_pem_start");
#endif

/// The CA of HTTPS downloads: certs/ca.pem when embedded (the broker's CA), else none.
const char* httpCa() {
#if CONFIG_OTA_EMBED_CA_CERT
  return kHttpCaPem;
#else
  return nullptr;
#endif
}

class EspClock : public ota_core::Clock {
 public:
  uint32_t nowMs() override { return static_cast<uint32_t>(esp_timer_get_time() / 1000); }
};

/// `{p}/dev/{id}/<kind>` (ota_core::buildDeviceTopic) in static storage, one buffer per kind.
/// Empty when the prefix or id breaks protocol §2 (the Receiver then reports its config invalid).
template <ota_core::TopicKind kKind>
const char* topicFor(const char* id) {
  static char topic[ota_core::kMaxOwnTopicBytes];
  ota_core::buildDeviceTopic(topic, sizeof topic, CONFIG_OTA_TOPIC_PREFIX, id, kKind);
  return topic;
}

/// The application: every object of the update path, built once at start-up (no heap later).
class App {
 public:
  App(const char* deviceId, const char* version)
      : inbox_(slots_.pointers(), kInboxSlots, freeSlots_, readySlots_),
        link_(deviceId, topicFor<ota_core::TopicKind::DATA>(deviceId),
              topicFor<ota_core::TopicKind::ERROR>(deviceId),
              topicFor<ota_core::TopicKind::OFFER>(deviceId), inbox_),
        publisher_(link_, topicFor<ota_core::TopicKind::REQUEST>(deviceId)),
        resumeStore_(resumeRecords_, sink_.slotId()),
        recordingSink_(sink_, bootStore_, sink_.label()),
        rx_(makeConfig(deviceId, version), recordingSink_, publisher_, resumeStore_, clock_),
        selfTest_(boot_, bootStore_, publisher_, topicFor<ota_core::TopicKind::STATUS>(deviceId), version,
                  static_cast<uint32_t>(CONFIG_OTA_SELFTEST_TIMEOUT_S) * 1000u),
        task_(rx_, inbox_, clock_, publisher_, &selfTest_, taskOptions()) {
    recordingSink_.watch(rx_);
  }

  /// Starts the receiver task, then the MQTT client. False when either could not start (the
  /// receiver task still runs the self-test clock when only the client failed).
  bool start() {
    if (!freeSlots_.valid() || !readySlots_.valid() || !rx_.configValid()) return false;
    selfTest_.begin(clock_.nowMs());
    if (selfTest_.onProbation()) ESP_LOGI(kTag, "new image: self-test running");
    FreeRtosOs os;
    if (!os.startTask("ota_rx", run, this, kReceiverStackBytes, kReceiverPriority)) return false;
    return link_.start();
  }

 private:
  static ota_core::ReceiverTaskOptions taskOptions() {
    ota_core::ReceiverTaskOptions o;
    o.checkIntervalMs = static_cast<uint32_t>(CONFIG_OTA_CHECK_INTERVAL_S) * 1000u;
    o.mqtt5 = true;
    return o;
  }

  /// The receiver task.
  static void run(void* self) {
    auto* app = static_cast<App*>(self);
    for (;;) {
      app->task_.step();
      app->afterStep();
    }
  }

  void afterStep() {
    uint32_t now = clock_.nowMs();
    ota_core::State s = rx_.state();
    // Wi-Fi modem sleep delays every received packet by up to a beacon interval: off while
    // an image streams in, back on afterwards.
    bool transferring = s == ota_core::State::RECEIVING;
    if (transferring != powerSaveOff_) {
      powerSaveOff_ = transferring;
      wifiStationLowLatency(transferring);
    }
    if (s == ota_core::State::VERIFIED && !restartScheduled_) {
      // The boot record was saved by recordingSink_ before the boot partition switched.
      restartScheduled_ = true;
      restartAtMs_ = now + kRestartDelayMs;
      ESP_LOGI(kTag, "image %s verified, restarting", rx_.outcome().version);
    }
    int32_t late = static_cast<int32_t>(now - restartAtMs_);
    if (restartScheduled_ && late >= 0 &&
        (link_.pendingPublishes() == 0 || late >= static_cast<int32_t>(3 * kRestartDelayMs))) {
      esp_restart();
    }
    if (selfTest_.phase() != lastPhase_) {
      lastPhase_ = selfTest_.phase();
      ESP_LOGI(kTag, "self-test %s %s", ota_core::toString(lastPhase_), selfTest_.failure());
    }
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
    // The product is the CMake project name (firmware/CMakeLists.txt), which is also what the
    // app descriptor carries and the catalog files the built image under.
    c.product = esp_app_get_description()->project_name;
    c.currentVersion = version;
    c.wantedVersion = "latest";
    c.chunkSize = CONFIG_OTA_CHUNK_SIZE;
    c.window = CONFIG_OTA_WINDOW;
    c.maxChunkBytes = CONFIG_OTA_CHUNK_SIZE;
    c.mqtt5 = true;
    // Protocol §11: MqttLink subscribes to the shared image topic a MANIFEST names.
    c.shared = CONFIG_OTA_SHARED_STREAM;
    c.acceptEsp32App = true;
    c.acceptGenericFile = false;
    c.verifier = &verifier_;
    // The delay after an OFFER spreads a wave's REQUESTs (protocol §8.1). esp_random
    // (esp_random.h) is the hardware RNG: true random once Wi-Fi runs, which it does before any
    // OFFER can arrive; it busy-waits only microseconds to keep its read rate.
    c.random = [](void*) -> uint32_t { return esp_random(); };
    // Protocol §7.3 / §8.8: URL MANIFESTs are followed always, asked for when configured.
    c.httpDownloader = &httpDownloader_;
#if CONFIG_OTA_HTTP_DOWNLOAD
    c.askHttp = true;
#endif
#if CONFIG_OTA_EMBED_SIGNING_KEY
    // A key that failed to load still means "signatures required".
    c.requireSignature = true;
#endif
    return c;
  }

  // Declaration order is construction order.
  ota_core::InboxSlots<kInboxSlots, kSlotBytes> slots_;
  FreeRtosQueue freeSlots_{kInboxSlots};
  FreeRtosQueue readySlots_{kInboxSlots + 1};
  ota_core::Inbox inbox_;
  MqttLink link_;
  ota_core::TrackingPublisher publisher_;
  EspOtaSink sink_;
  NvsRecordStore resumeRecords_;
  ota_core::ResumeRecordStore resumeStore_;
  NvsBootStore bootStore_;
  EspBootControl boot_;
  ota_core::RecordingSink recordingSink_;
  EspClock clock_;
  ota_core::SignatureVerifier verifier_;
  EspHttpDownloader httpDownloader_{httpCa()};
  ota_core::Receiver rx_;
  ota_core::SelfTest selfTest_;
  ota_core::ReceiverTask task_;
  bool powerSaveOff_ = false;
  bool restartScheduled_ = false;
  uint32_t restartAtMs_ = 0;
  ota_core::SelfTestPhase lastPhase_ = ota_core::SelfTestPhase::IDLE;
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

  const esp_app_desc_t* app = esp_app_get_description();
  const char* id = deviceId();
  ESP_LOGI(kTag, "device %s, product %s, version %s, running %s", id, app->project_name,
           app->version, esp_ota_get_running_partition()->label);

  // Constructed once, never freed: every buffer of the transfer lives inside (no heap later).
  static App receiver(id, app->version);
  bool wifiOk = wifiStationStart(CONFIG_OTA_WIFI_SSID, CONFIG_OTA_WIFI_PASSWORD, kWifiTimeoutMs);
  if (!wifiOk) ESP_LOGW(kTag, "no Wi-Fi yet; still trying in the background");
  if (!receiver.start()) {
    ESP_LOGE(kTag, "cannot start the receiver (configuration or memory)");
    // Without a receiver task nothing can finish the self-test: an image on probation goes back.
    EspBootControl boot;
    if (boot.pendingVerify()) boot.rollback();
  }
  // app_main returns; the MQTT task and the receiver task run from here on. A pending image
  // whose self-test cannot pass (no Wi-Fi, no broker) is rolled back by the receiver task.
}
