// mqtt_link.h: the esp-mqtt client as the receiver's transport, in two halves by task.
//
// MQTT task (esp-mqtt's own; it runs the event handler: esp_mqtt_dispatch_event() posts to the
// client's event loop and runs it in place, mqtt_client.c): onEvent() only copies. Every
// MQTT_EVENT_DATA points into client->mqtt_state.in_buffer, which the next packet overwrites
// (deliver_publish, mqtt_client.c; the MQTT 5 properties likewise, mqtt5_client.c), so a whole
// message, fragments reassembled and properties copied at current_data_offset == 0, goes into a
// slot of the Inbox and the handler returns. Link events (connected and subscribed, a SUBACK
// that refused, disconnected, a session the broker did not keep) are posted to the same Inbox, as
// ota_core::LinkSession decides (link_session.h: what a reconnect subscribes again).
//
// Receiver task: publish(), subscribe() and unsubscribe() of the shared image topic (protocol
// §11.4; esp_mqtt_client_subscribe_single and esp_mqtt_client_unsubscribe take the same API lock,
// mqtt_client.c). esp_mqtt5_client_set_publish_property() keeps the pointer it is
// given until the next publish consumes it (mqtt5_client.c, make_publish in mqtt_client.c), so
// property + publish must not interleave with another task's publish: only the receiver task
// publishes.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "mqtt_client.h"
#include "ota_config.h"
#include "ota_core/inbox.h"
#include "ota_core/link_session.h"
#include "ota_core/platform.h"

/// See file header.
class MqttLink : public ota_core::Publisher {
 public:
  /// `clientId` and the topics must outlive the link; `inbox` receives messages and link events.
  /// The offer topic (protocol §2, §8.1) is where a rollout tells the device to ask now.
  MqttLink(const char* clientId, const char* dataTopic, const char* errorTopic,
           const char* offerTopic, ota_core::Inbox& inbox);
  /// Priority of esp-mqtt's task (its default, MQTT_TASK_PRIORITY in mqtt_config.h, set
  /// explicitly: the receiver task is placed just above it).
  static constexpr int kTaskPriority = 5;

  /// Creates and starts the client; false when esp-mqtt refused the configuration.
  bool start();
  /// Receiver task only (see file header).
  bool publish(const char* topic, const uint8_t* data, size_t size, const char* responseTopic,
               ota_core::Bytes correlation) override;
  /// Messages published with QoS 1 and not yet acknowledged by the broker.
  int pendingPublishes() const { return pending_.load(); }
  /// Receiver task only: QoS 0 subscription to the shared image topic of a transfer (§11.4).
  /// After a reconnect without a session the receiver task calls it again (kLinkSessionLost).
  bool subscribe(const char* topic) override;
  void unsubscribe(const char* topic) override;

 private:
  static void onEvent(void* self, esp_event_base_t base, int32_t id, void* data);
  void handle(esp_mqtt_event_handle_t event);

  const char* clientId_;
  const char* dataTopic_;
  const char* errorTopic_;
  const char* offerTopic_;
  ota_core::Inbox& inbox_;
  /// The receiver subscribes to its data, error and offer topics.
  static constexpr size_t kLinkTopics = 3;

  esp_mqtt_client_handle_t client_ = nullptr;
  /// MQTT task only.
  ota_core::LinkSession session_;
  /// Written by the MQTT task, read by the receiver task (subscribe()).
  std::atomic<bool> connected_{false};
  std::atomic<int> pending_{0};
  /// Message id of the shared topic's SUBSCRIBE: its SUBACK is not a link subscription.
  std::atomic<int> sharedMsgId_{-1};
  /// Must stay valid from esp_mqtt5_client_set_publish_property() to the publish that uses it.
  esp_mqtt5_publish_property_config_t publishProperty_ = {};
};
