// mqtt_link.h: the esp-mqtt client as the receiver's transport. Everything that touches the
// receiver runs in the MQTT task: inbound data (MQTT_EVENT_DATA, reassembled), timeouts (an
// esp_timer posts MQTT_USER_EVENT every kTickMs, which the MQTT task dispatches) and publishes
// (esp_mqtt5_client_set_publish_property keeps a pointer until the next publish, so property
// set + publish must not interleave with another task's publish).
#pragma once

#include <cstddef>
#include <cstdint>

#include "mqtt_client.h"
#include "ota_config.h"
#include "ota_core/assembler.h"
#include "ota_core/platform.h"

/// What the application does on link events; called in the MQTT task.
class MqttLinkListener {
 public:
  virtual ~MqttLinkListener() = default;
  /// Connected and both subscriptions acknowledged (the broker round trip of the self-test).
  virtual void onReady() = 0;
  virtual void onMessage(const ota_core::InboundMessage& message) = 0;
  virtual void onTick(uint32_t nowMs) = 0;
};

/// See file header.
class MqttLink : public ota_core::Publisher {
 public:
  /// Reassembly storage for one CHUNK message of the configured chunk size.
  static constexpr size_t kRxCapacity = ota_core::kChunkHeaderBytes + CONFIG_OTA_CHUNK_SIZE;
  static constexpr uint32_t kTickMs = 20;

  MqttLink(const char* clientId, const char* dataTopic, const char* errorTopic,
           MqttLinkListener& listener);
  bool start();
  bool publish(const char* topic, const uint8_t* data, size_t size, const char* responseTopic,
               ota_core::Bytes correlation) override;
  /// Messages published with QoS 1 and not yet acknowledged by the broker.
  int pendingPublishes() const { return pending_; }

 private:
  static void onEvent(void* self, esp_event_base_t base, int32_t id, void* data);
  static void onTimer(void* self);
  void handle(esp_mqtt_event_handle_t event);

  const char* clientId_;
  const char* dataTopic_;
  const char* errorTopic_;
  MqttLinkListener& listener_;
  esp_mqtt_client_handle_t client_ = nullptr;
  int subscribed_ = 0;
  volatile int pending_ = 0;
  /// Must stay valid from esp_mqtt5_client_set_publish_property() to the publish that uses it.
  esp_mqtt5_publish_property_config_t publishProperty_ = {};
  uint8_t rxStorage_[kRxCapacity];
  ota_core::MessageAssembler assembler_{rxStorage_, sizeof rxStorage_};
};
