// mqtt_link.cpp: see mqtt_link.h. Calls checked against esp-mqtt as pinned by ESP-IDF v5.5.3
// (include/mqtt_client.h, include/mqtt5_client.h).
#include "mqtt_link.h"

#include <cstring>

#include "esp_log.h"
#include "esp_timer.h"

namespace {
const char* const kTag = "mqtt_link";

#if CONFIG_OTA_EMBED_CA_CERT
extern const char kCaPem[] asm("_binary_ca_pem_start");
#endif
#if CONFIG_OTA_EMBED_CLIENT_CERT
extern const char kClientCrt[] asm("_binary_client_crt_start");
extern const char kClientKey[] asm("_binary_client_key_start");
#endif
}  // namespace

MqttLink::MqttLink(const char* clientId, const char* dataTopic, const char* errorTopic,
                   MqttLinkListener& listener)
    : clientId_(clientId), dataTopic_(dataTopic), errorTopic_(errorTopic), listener_(listener) {}

bool MqttLink::start() {
  esp_mqtt_client_config_t cfg = {};
  cfg.broker.address.uri = CONFIG_OTA_BROKER_URI;
#if CONFIG_OTA_EMBED_CA_CERT
  cfg.broker.verification.certificate = kCaPem;
#endif
#if CONFIG_OTA_EMBED_CLIENT_CERT
  cfg.credentials.authentication.certificate = kClientCrt;
  cfg.credentials.authentication.key = kClientKey;
#endif
  // Protocol §2: the client id is the device id (broker ACLs key on it).
  cfg.credentials.client_id = clientId_;
  // CONFIG_MQTT_PROTOCOL_5 only compiles MQTT 5 in; the connection still defaults to 3.1.1.
  cfg.session.protocol_ver = MQTT_PROTOCOL_V_5;
  // A whole CHUNK fits one receive buffer (no fragmentation in the common case); the assembler
  // still handles fragments when the broker adds properties or the sender grants more.
  cfg.buffer.size = static_cast<int>(kRxCapacity) + 512;
  cfg.buffer.out_size = 1024;
  // The receiver runs in this task: flash writes, SHA-256 and (once) ECDSA verification.
  cfg.task.stack_size = 8192;
  client_ = esp_mqtt_client_init(&cfg);
  if (client_ == nullptr) return false;
  if (esp_mqtt_client_register_event(client_, MQTT_EVENT_ANY, onEvent, this) != ESP_OK) return false;
  if (esp_mqtt_client_start(client_) != ESP_OK) return false;
  esp_timer_create_args_t timerArgs = {};
  timerArgs.callback = onTimer;
  timerArgs.arg = this;
  timerArgs.name = "ota_tick";
  esp_timer_handle_t timer = nullptr;
  return esp_timer_create(&timerArgs, &timer) == ESP_OK &&
         esp_timer_start_periodic(timer, kTickMs * 1000) == ESP_OK;
}

void MqttLink::onTimer(void* self) {
  // Runs in the esp_timer task: hand the tick to the MQTT task instead of calling the receiver.
  auto* link = static_cast<MqttLink*>(self);
  esp_mqtt_event_t event = {};
  event.event_id = MQTT_USER_EVENT;
  esp_mqtt_dispatch_custom_event(link->client_, &event);
}

void MqttLink::onEvent(void* self, esp_event_base_t, int32_t, void* data) {
  static_cast<MqttLink*>(self)->handle(static_cast<esp_mqtt_event_handle_t>(data));
}

void MqttLink::handle(esp_mqtt_event_handle_t event) {
  switch (event->event_id) {
    case MQTT_EVENT_CONNECTED:
      subscribed_ = 0;
      esp_mqtt_client_subscribe_single(client_, dataTopic_, 1);
      esp_mqtt_client_subscribe_single(client_, errorTopic_, 1);
      break;
    case MQTT_EVENT_SUBSCRIBED:
      if (++subscribed_ == 2) listener_.onReady();
      break;
    case MQTT_EVENT_PUBLISHED:
      if (pending_ > 0) pending_ = pending_ - 1;
      break;
    case MQTT_EVENT_DATA: {
      // esp-mqtt splits a message larger than its buffer over several events; topic and
      // properties come with the first only and point into a buffer the next one overwrites,
      // so the assembler copies them at offset 0.
      ota_core::FragmentHeader header;
      if (event->current_data_offset == 0) {
        header.topic = {reinterpret_cast<const uint8_t*>(event->topic),
                        static_cast<size_t>(event->topic_len)};
        if (event->property != nullptr) {
          header.responseTopic = {reinterpret_cast<const uint8_t*>(event->property->response_topic),
                                  static_cast<size_t>(event->property->response_topic_len)};
          header.correlation = {reinterpret_cast<const uint8_t*>(event->property->correlation_data),
                                event->property->correlation_data_len};
        }
      }
      auto result = assembler_.feed(header, reinterpret_cast<const uint8_t*>(event->data),
                                    static_cast<size_t>(event->data_len),
                                    static_cast<size_t>(event->current_data_offset),
                                    static_cast<size_t>(event->total_data_len));
      if (result == ota_core::MessageAssembler::Result::COMPLETE) {
        listener_.onMessage(assembler_.message());
      } else if (result == ota_core::MessageAssembler::Result::DROPPED) {
        ESP_LOGW(kTag, "dropped a %d-byte message (buffer %u)", event->total_data_len,
                 static_cast<unsigned>(kRxCapacity));
      }
      break;
    }
    case MQTT_USER_EVENT:
      listener_.onTick(static_cast<uint32_t>(esp_timer_get_time() / 1000));
      break;
    case MQTT_EVENT_DISCONNECTED:
      ESP_LOGW(kTag, "disconnected from the broker");
      break;
    default:
      break;
  }
}

bool MqttLink::publish(const char* topic, const uint8_t* data, size_t size,
                       const char* responseTopic, ota_core::Bytes correlation) {
  // Set and used from the MQTT task (the only task that publishes): esp-mqtt keeps this pointer
  // and consumes it with the next publish.
  publishProperty_ = {};
  publishProperty_.response_topic = responseTopic;
  publishProperty_.correlation_data = reinterpret_cast<const char*>(correlation.data);
  publishProperty_.correlation_data_len = static_cast<uint16_t>(correlation.size);
  if (responseTopic != nullptr || correlation.size != 0) {
    esp_mqtt5_client_set_publish_property(client_, &publishProperty_);
  }
  int id = esp_mqtt_client_publish(client_, topic, reinterpret_cast<const char*>(data),
                                   static_cast<int>(size), 1, 0);
  if (id < 0) {
    ESP_LOGW(kTag, "publish to %s failed", topic);
    return false;
  }
  pending_ = pending_ + 1;
  return true;
}
