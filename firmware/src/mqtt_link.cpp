// mqtt_link.cpp: see mqtt_link.h. Calls checked against esp-mqtt as pinned by ESP-IDF v5.5.3
// (include/mqtt_client.h, include/mqtt5_client.h, mqtt_client.c, mqtt5_client.c).
#include "mqtt_link.h"

#include <cstring>

#include "esp_log.h"

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
                   const char* offerTopic, ota_core::Inbox& inbox)
    : clientId_(clientId),
      dataTopic_(dataTopic),
      errorTopic_(errorTopic),
      offerTopic_(offerTopic),
      inbox_(inbox),
      session_(kLinkTopics) {}

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
  // A whole CHUNK fits one receive buffer (no fragmentation in the common case); the inbox's
  // assemblers still handle fragments when the broker adds properties.
  cfg.buffer.size = static_cast<int>(ota_core::kChunkHeaderBytes + CONFIG_OTA_CHUNK_SIZE) + 512;
  cfg.buffer.out_size = 1024;
  // This task only copies messages now: the default stack is plenty.
  cfg.task.priority = kTaskPriority;
  client_ = esp_mqtt_client_init(&cfg);
  if (client_ == nullptr) return false;
  return esp_mqtt_client_register_event(client_, MQTT_EVENT_ANY, onEvent, this) == ESP_OK &&
         esp_mqtt_client_start(client_) == ESP_OK;
}

void MqttLink::onEvent(void* self, esp_event_base_t, int32_t, void* data) {
  static_cast<MqttLink*>(self)->handle(static_cast<esp_mqtt_event_handle_t>(data));
}

void MqttLink::handle(esp_mqtt_event_handle_t event) {
  switch (event->event_id) {
    case MQTT_EVENT_CONNECTED: {
      connected_.store(true);
      // The clean session dropped the shared topic's subscription, and esp-mqtt draws message ids
      // at random (append_message_id in lib/mqtt_msg.c): a stale id could match one of the link
      // SUBSCRIBEs below and swallow its SUBACK, so the link would never be ready.
      sharedMsgId_.store(-1);
      // session_present comes from the CONNACK (esp_mqtt5_parse_connack, mqtt5_client.c). The
      // client connects with a clean session (session.disable_clean_session left false), so it is
      // 0 and every subscription is gone: LinkSession says to subscribe the link's topics again
      // and, after their SUBACKs, posts kLinkSessionLost, on which the receiver task subscribes
      // the shared image topic of its transfer again (Receiver::onSessionLost; link_session.h).
      ota_core::LinkSession::Connected c = session_.onConnected(event->session_present != 0);
      if (c.events != 0) inbox_.postEvent(c.events);
      if (!c.subscribeLinkTopics) break;
      // Subscribing from the handler is safe: esp_mqtt_task (mqtt_client.c) dispatches while it
      // holds the client's recursive API lock, which esp_mqtt_client_subscribe_single re-takes.
      esp_mqtt_client_subscribe_single(client_, dataTopic_, 1);
      esp_mqtt_client_subscribe_single(client_, errorTopic_, 1);
      // OFFERs (protocol §4.8) come with QoS 1; the shipped ACL grants read on this topic only
      // to its own device, so a SUBACK refusal here is an ACL or prefix problem like the others.
      esp_mqtt_client_subscribe_single(client_, offerTopic_, 1);
      break;
    }
    case MQTT_EVENT_SUBSCRIBED: {
      // deliver_suback (mqtt_client.c) raises MQTT_EVENT_SUBSCRIBED for a refusing SUBACK too,
      // with error_type MQTT_ERROR_TYPE_SUBSCRIBE_FAILED when a reason code is >= 0x80.
      bool refused = event->error_handle != nullptr &&
                     event->error_handle->error_type == MQTT_ERROR_TYPE_SUBSCRIBE_FAILED;
      if (event->msg_id == sharedMsgId_.load()) {
        // The shared image topic (§11.4): a refusal only means unicast, the link is fine.
        if (refused) ESP_LOGW(kTag, "the broker refused the shared image topic: unicast only");
        break;
      }
      if (refused) ESP_LOGE(kTag, "the broker refused a subscription (ACL or topic prefix)");
      uint32_t events = session_.onLinkSuback(refused);
      if (events != 0) inbox_.postEvent(events);
      break;
    }
    case MQTT_EVENT_PUBLISHED:
      if (pending_.load() > 0) pending_.fetch_sub(1);
      break;
    case MQTT_EVENT_DATA: {
      // Copy now: data, topic and properties point into the client's receive buffer, which the
      // next packet overwrites. Topic and properties come with the first fragment only.
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
      ota_core::Inbox::FeedResult r = inbox_.feed(
          header, reinterpret_cast<const uint8_t*>(event->data),
          static_cast<size_t>(event->data_len), static_cast<size_t>(event->current_data_offset),
          static_cast<size_t>(event->total_data_len));
      if (r == ota_core::Inbox::FeedResult::DROPPED && event->current_data_offset == 0) {
        // Every slot stayed busy for kInboxSlotWaitMs (the flash is far behind), or too large.
        // A lost CHUNK is NACKed with GAP when the next one arrives and resent by the sender
        // (protocol §7).
        ESP_LOGD(kTag, "dropped a %d-byte message (inbox full or too large)",
                 event->total_data_len);
      }
      break;
    }
    case MQTT_EVENT_DISCONNECTED:
      // esp_mqtt_abort_connection (mqtt_client.c) raises it and waits reconnect_timeout_ms before
      // the next CONNECT (MQTT_STATE_WAIT_RECONNECT); the next CONNECTED subscribes again.
      ESP_LOGW(kTag, "disconnected from the broker");
      connected_.store(false);
      inbox_.postEvent(session_.onDisconnected());
      break;
    default:
      break;
  }
}

bool MqttLink::subscribe(const char* topic) {
  // QoS 0 like the shared CHUNKs (§11.2). Should the SUBACK beat the store of its id, it counts
  // as a link subscription after the link's own three: LinkSession passes its count and no
  // second "ready" is posted, so the race is harmless.
  int id = esp_mqtt_client_subscribe_single(client_, topic, 0);
  sharedMsgId_.store(id);
  // esp_mqtt_client_subscribe_multiple (mqtt_client.c) returns -1 while the client is not
  // connected. The next CONNECTED without a session makes the receiver subscribe again
  // (kLinkSessionLost), so a transfer that joins its stream while the link is down keeps it.
  return id >= 0 || !connected_.load();
}

void MqttLink::unsubscribe(const char* topic) {
  sharedMsgId_.store(-1);
  esp_mqtt_client_unsubscribe(client_, topic);
}

bool MqttLink::publish(const char* topic, const uint8_t* data, size_t size,
                       const char* responseTopic, ota_core::Bytes correlation) {
  // Receiver task only: esp-mqtt keeps this pointer and consumes it with the next publish. Both
  // calls take the client's API lock, so they wait while the MQTT task copies a message (short:
  // the handler never touches the flash).
  publishProperty_ = {};
  publishProperty_.response_topic = responseTopic;
  publishProperty_.correlation_data = reinterpret_cast<const char*>(correlation.data);
  publishProperty_.correlation_data_len = static_cast<uint16_t>(correlation.size);
  if (responseTopic != nullptr || correlation.size != 0) {
    esp_mqtt5_client_set_publish_property(client_, &publishProperty_);
  }
  pending_.fetch_add(1);  // before: MQTT_EVENT_PUBLISHED may arrive before the call returns
  int id = esp_mqtt_client_publish(client_, topic, reinterpret_cast<const char*>(data),
                                   static_cast<int>(size), 1, 0);
  if (id < 0) {
    pending_.fetch_sub(1);
    ESP_LOGW(kTag, "publish to %s failed", topic);
    return false;
  }
  return true;
}
