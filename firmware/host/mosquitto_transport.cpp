// mosquitto_transport.cpp: see mosquitto_transport.h. libmosquitto hands over whole messages;
// they still go through the core's MessageAssembler (as one fragment; in the task design the
// Inbox's) so host and ESP32 share the same inbound path, including the copy of Response Topic /
// Correlation Data. Callbacks run on libmosquitto's thread in the task design.
#include "mosquitto_transport.h"

#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <sys/socket.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace ota_host {

void FairRecursiveLock::lock() {
  std::unique_lock<std::mutex> guard(mutex_);
  if (depth_ > 0 && owner_ == std::this_thread::get_id()) {
    ++depth_;
    return;
  }
  uint64_t ticket = nextTicket_++;
  turn_.wait(guard, [&] { return depth_ == 0 && serving_ == ticket; });
  owner_ = std::this_thread::get_id();
  depth_ = 1;
}

void FairRecursiveLock::unlock() {
  std::lock_guard<std::mutex> guard(mutex_);
  if (--depth_ == 0) {
    owner_ = std::thread::id();
    ++serving_;
    turn_.notify_all();
  }
}

struct MosquittoCallbacks {
  static void connect(struct mosquitto* m, void* obj, int rc, int flags,
                      const mosquitto_property*) {
    auto* t = static_cast<MosquittoTransport*>(obj);
    std::lock_guard<FairRecursiveLock> lock(t->apiLock_);
    if (rc != 0) {
      std::fprintf(stderr, "connect refused: %s\n", mosquitto_reason_string(rc));
      return;
    }
    t->connected_ = true;
    t->subscribed_ = 0;
    t->refused_ = false;
    // The old shared SUBSCRIBE's id may be drawn again for a link topic below.
    t->sharedMid_ = -1;
    // `flags` are the CONNACK's acknowledge flags, bit 0 session present (MQTT 5 §3.2.2.1.1).
    // mosquitto_new(clean_session = true): none is kept, so the link subscribes again and, after
    // its SUBACKs, the receiver task subscribes the shared topic again (link_session.h).
    ota_core::LinkSession::Connected c = t->session_.onConnected((flags & 1) != 0);
    if (c.events != 0 && t->inbox_ != nullptr) t->inbox_->postEvent(c.events);
    if (!c.subscribeLinkTopics) {
      t->subscribed_ = t->topics_.size();
      return;
    }
    for (const std::string& topic : t->topics_) {
      mosquitto_subscribe_v5(m, nullptr, topic.c_str(), 1, 0, nullptr);
    }
  }
  static void subscribe(struct mosquitto*, void* obj, int mid, int count, const int* granted,
                        const mosquitto_property*) {
    auto* t = static_cast<MosquittoTransport*>(obj);
    std::lock_guard<FairRecursiveLock> lock(t->apiLock_);
    // The shared image topic is no link subscription: a refusal means unicast only (§11.3).
    if (mid == t->sharedMid_) return;
    // A SUBACK reason code >= 0x80 refuses the subscription (MQTT 5 §3.9.3; 3.1.1: 0x80).
    bool refused = false;
    for (int i = 0; i < count; ++i) {
      if (granted[i] >= 0x80) refused = true;
    }
    if (refused) t->refused_ = true;
    ++t->subscribed_;
    uint32_t events = t->session_.onLinkSuback(refused);
    if (events != 0 && t->inbox_ != nullptr) t->inbox_->postEvent(events);
  }
  static void publish(struct mosquitto*, void* obj, int, int, const mosquitto_property*) {
    static_cast<MosquittoTransport*>(obj)->inFlight_--;
  }
  static void disconnect(struct mosquitto*, void* obj, int, const mosquitto_property*) {
    auto* t = static_cast<MosquittoTransport*>(obj);
    std::lock_guard<FairRecursiveLock> lock(t->apiLock_);
    t->connected_ = false;
    uint32_t events = t->session_.onDisconnected();
    if (t->inbox_ != nullptr) t->inbox_->postEvent(events);
  }
  static void message(struct mosquitto*, void* obj, const struct mosquitto_message* msg,
                      const mosquitto_property* props) {
    auto* t = static_cast<MosquittoTransport*>(obj);
    std::lock_guard<FairRecursiveLock> lock(t->apiLock_);
    char* rt = nullptr;
    void* corr = nullptr;
    uint16_t corrLen = 0;
    if (props != nullptr) {
      mosquitto_property_read_string(props, MQTT_PROP_RESPONSE_TOPIC, &rt, false);
      mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &corr, &corrLen, false);
    }
    ota_core::FragmentHeader h;
    h.topic = ota_core::bytesOf(msg->topic);
    h.responseTopic = ota_core::bytesOf(rt);
    h.correlation = ota_core::Bytes{static_cast<const uint8_t*>(corr), corrLen};
    size_t len = static_cast<size_t>(msg->payloadlen);
    const auto* payload = static_cast<const uint8_t*>(msg->payload);
    if (t->inbox_ != nullptr) {
      // Task design: copy and return; the receiver task does the rest.
      t->inbox_->feed(h, payload, len, 0, len);
    } else {
      auto r = t->assembler_->feed(h, payload, len, 0, len);
      if (r == ota_core::MessageAssembler::Result::COMPLETE && t->handler_) {
        t->handler_(t->assembler_->message());
      }
    }
    std::free(rt);
    std::free(corr);
  }
};

MosquittoTransport::MosquittoTransport()
    : storage_(ota_core::kMaxChunkMessageBytes) {
  assembler_ = std::make_unique<ota_core::MessageAssembler>(storage_.data(), storage_.size());
  mosquitto_lib_init();
}

MosquittoTransport::~MosquittoTransport() {
  if (mosq_ != nullptr) {
    mosquitto_disconnect(mosq_);
    if (threaded_) mosquitto_loop_stop(mosq_, false);
    mosquitto_destroy(mosq_);
  }
  mosquitto_lib_cleanup();
}

bool MosquittoTransport::connect(const TransportOptions& o, std::vector<std::string> topics,
                                 std::string& error) {
  topics_ = std::move(topics);
  session_ = ota_core::LinkSession(topics_.size());
  mqtt5_ = o.mqtt5;
  mosq_ = mosquitto_new(o.clientId.c_str(), true, this);
  if (mosq_ == nullptr) {
    error = "mosquitto_new failed";
    return false;
  }
  mosquitto_int_option(mosq_, MOSQ_OPT_PROTOCOL_VERSION, o.mqtt5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311);
  // Small ACK/REQUEST packets must not wait for Nagle: the sender's window advances on them.
  mosquitto_int_option(mosq_, MOSQ_OPT_TCP_NODELAY, 1);
  mosquitto_connect_v5_callback_set(mosq_, MosquittoCallbacks::connect);
  mosquitto_subscribe_v5_callback_set(mosq_, MosquittoCallbacks::subscribe);
  mosquitto_publish_v5_callback_set(mosq_, MosquittoCallbacks::publish);
  mosquitto_disconnect_v5_callback_set(mosq_, MosquittoCallbacks::disconnect);
  mosquitto_message_v5_callback_set(mosq_, MosquittoCallbacks::message);
  if (!o.caFile.empty()) {
    int rc = mosquitto_tls_set(mosq_, o.caFile.c_str(), nullptr,
                               o.certFile.empty() ? nullptr : o.certFile.c_str(),
                               o.keyFile.empty() ? nullptr : o.keyFile.c_str(), nullptr);
    if (rc != MOSQ_ERR_SUCCESS) {
      error = std::string("TLS setup failed: ") + mosquitto_strerror(rc);
      return false;
    }
  }
  int rc = mosquitto_connect_bind_v5(mosq_, o.host.c_str(), o.port, 30, nullptr, nullptr);
  if (rc != MOSQ_ERR_SUCCESS) {
    error = std::string("cannot connect to ") + o.host + ":" + std::to_string(o.port) + ": " +
            mosquitto_strerror(rc);
    return false;
  }
  if (o.tcpWindow > 0) {
    // Set after connect (libmosquitto opens the socket): the advertised window shrinks to it
    // from here on; Linux doubles the value for its bookkeeping.
    int fd = mosquitto_socket(mosq_);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &o.tcpWindow, sizeof o.tcpWindow) != 0) {
      error = "cannot set the socket's receive buffer";
      return false;
    }
  }
  return true;
}

bool MosquittoTransport::startThread(std::string& error) {
  int rc = mosquitto_loop_start(mosq_);
  if (rc != MOSQ_ERR_SUCCESS) {
    error = std::string("cannot start the network thread: ") + mosquitto_strerror(rc);
    return false;
  }
  threaded_ = true;
  return true;
}

bool MosquittoTransport::loop(int timeoutMs) {
  int rc = mosquitto_loop(mosq_, timeoutMs, 1);
  if (rc == MOSQ_ERR_CONN_LOST || rc == MOSQ_ERR_NO_CONN) {
    connected_ = false;
    return mosquitto_reconnect(mosq_) == MOSQ_ERR_SUCCESS;
  }
  return rc == MOSQ_ERR_SUCCESS;
}

bool MosquittoTransport::publish(const char* topic, const uint8_t* data, size_t size,
                                 const char* responseTopic, ota_core::Bytes correlation) {
  std::lock_guard<FairRecursiveLock> lock(apiLock_);
  mosquitto_property* props = nullptr;
  if (mqtt5_ && responseTopic != nullptr) {
    mosquitto_property_add_string(&props, MQTT_PROP_RESPONSE_TOPIC, responseTopic);
  }
  if (mqtt5_ && correlation.size != 0) {
    mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, correlation.data,
                                  static_cast<uint16_t>(correlation.size));
  }
  ++inFlight_;  // before the call: the PUBACK may arrive on the network thread before it returns
  int rc = mosquitto_publish_v5(mosq_, nullptr, topic, static_cast<int>(size), data, 1, false, props);
  mosquitto_property_free_all(&props);
  if (rc != MOSQ_ERR_SUCCESS) --inFlight_;
  return rc == MOSQ_ERR_SUCCESS;
}

bool MosquittoTransport::subscribe(const char* topic) {
  std::lock_guard<FairRecursiveLock> lock(apiLock_);
  sharedTopic_ = topic;
  int mid = 0;
  int rc = mosquitto_subscribe_v5(mosq_, &mid, topic, 0, 0, nullptr);
  sharedMid_ = rc == MOSQ_ERR_SUCCESS ? mid : -1;
  // Not connected now: the next connect has no session, and the receiver subscribes again then.
  return rc == MOSQ_ERR_SUCCESS || rc == MOSQ_ERR_NO_CONN;
}

void MosquittoTransport::unsubscribe(const char* topic) {
  std::lock_guard<FairRecursiveLock> lock(apiLock_);
  if (sharedTopic_ != topic) return;
  mosquitto_unsubscribe_v5(mosq_, nullptr, topic, nullptr);
  sharedTopic_.clear();
  sharedMid_ = -1;
}

}  // namespace ota_host
