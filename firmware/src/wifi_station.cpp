// wifi_station.cpp: see wifi_station.h.
#include "wifi_station.h"

#include <cstring>

#include "esp_event.h"
#include "esp_log.h"
#include "esp_netif.h"
#include "esp_wifi.h"
#include "freertos/FreeRTOS.h"
#include "freertos/event_groups.h"

namespace {
const char* const kTag = "wifi";
constexpr EventBits_t kConnectedBit = BIT0;
EventGroupHandle_t s_events = nullptr;

void copyField(uint8_t* field, size_t capacity, const char* text) {
  size_t n = std::strlen(text);
  std::memcpy(field, text, n < capacity ? n : capacity);
}

void onEvent(void*, esp_event_base_t base, int32_t id, void*) {
  if (base == WIFI_EVENT && id == WIFI_EVENT_STA_START) {
    esp_wifi_connect();
  } else if (base == WIFI_EVENT && id == WIFI_EVENT_STA_DISCONNECTED) {
    xEventGroupClearBits(s_events, kConnectedBit);
    ESP_LOGW(kTag, "disconnected, reconnecting");
    esp_wifi_connect();
  } else if (base == IP_EVENT && id == IP_EVENT_STA_GOT_IP) {
    xEventGroupSetBits(s_events, kConnectedBit);
  }
}
}  // namespace

bool wifiStationStart(const char* ssid, const char* password, uint32_t timeoutMs) {
  s_events = xEventGroupCreate();
  ESP_ERROR_CHECK(esp_netif_init());
  ESP_ERROR_CHECK(esp_event_loop_create_default());
  esp_netif_create_default_wifi_sta();
  wifi_init_config_t init = WIFI_INIT_CONFIG_DEFAULT();
  ESP_ERROR_CHECK(esp_wifi_init(&init));
  ESP_ERROR_CHECK(esp_event_handler_instance_register(WIFI_EVENT, ESP_EVENT_ANY_ID, onEvent, nullptr, nullptr));
  ESP_ERROR_CHECK(esp_event_handler_instance_register(IP_EVENT, IP_EVENT_STA_GOT_IP, onEvent, nullptr, nullptr));
  wifi_config_t cfg = {};
  // wifi_sta_config_t (esp_wifi_types_generic.h): a 32-byte SSID and a 64-byte password need no
  // terminating NUL, so copy at most the field size (strncpy would trip -Wstringop-truncation).
  copyField(cfg.sta.ssid, sizeof cfg.sta.ssid, ssid);
  copyField(cfg.sta.password, sizeof cfg.sta.password, password);
  ESP_ERROR_CHECK(esp_wifi_set_mode(WIFI_MODE_STA));
  ESP_ERROR_CHECK(esp_wifi_set_config(WIFI_IF_STA, &cfg));
  ESP_ERROR_CHECK(esp_wifi_start());
  EventBits_t bits = xEventGroupWaitBits(s_events, kConnectedBit, pdFALSE, pdTRUE, pdMS_TO_TICKS(timeoutMs));
  return (bits & kConnectedBit) != 0;
}

void wifiStationLowLatency(bool on) {
  // esp_wifi_set_ps (esp_wifi.h): WIFI_PS_NONE keeps the radio awake, so a CHUNK is not held at
  // the access point until the next beacon; WIFI_PS_MIN_MODEM is the IDF default.
  esp_err_t err = esp_wifi_set_ps(on ? WIFI_PS_NONE : WIFI_PS_MIN_MODEM);
  if (err != ESP_OK) ESP_LOGW(kTag, "esp_wifi_set_ps: %s", esp_err_to_name(err));
}
