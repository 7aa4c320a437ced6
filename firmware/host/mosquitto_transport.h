// mosquitto_transport.h: the host's MQTT adapter (libmosquitto, MQTT 5 or 3.1.1). Owns the only
// libmosquitto calls of the host receiver. Two ways to run, matching the two designs the bench
// compares:
//  - task design (the ESP32's): startThread() runs libmosquitto's own network thread (like
//    esp-mqtt's MQTT task); its message callback only copies each message into an Inbox and
//    link events are posted to it; the receiver task publishes (libmosquitto queues the packet
//    for its thread). Like esp-mqtt, which dispatches every event with the client's recursive
//    API lock held and takes the same lock in every publish (esp_mqtt_task, mqtt_client.c),
//    callbacks and publish() share one recursive lock, so the host meets the same contention.
//    The lock is handed over in arrival order: on the ESP32 the receiver task runs above the
//    MQTT task's priority, so it gets the lock as soon as the MQTT task gives it back.
//  - inline design (the old firmware's): loop() on the caller's thread, whose message callback
//    runs the receiver, flash writes included, before the next packet is read.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <memory>
#include <string>
#include <vector>

#include "ota_core/assembler.h"
#include "ota_core/inbox.h"
#include "ota_core/link_session.h"
#include "ota_core/platform.h"

struct mosquitto;

namespace ota_host {

/// A recursive lock granted in the order it was asked for (a ticket lock), the host's model of
/// esp-mqtt's API lock taken by a higher-priority receiver task.
class FairRecursiveLock {
 public:
  void lock();
  void unlock();

 private:
  std::mutex mutex_;
  std::condition_variable turn_;
  uint64_t nextTicket_ = 0;
  uint64_t serving_ = 0;
  std::thread::id owner_;
  int depth_ = 0;
};

/// Connection settings.
struct TransportOptions {
  std::string host = "127.0.0.1";
  int port = 1883;
  std::string clientId;
  bool mqtt5 = true;
  std::string caFile, certFile, keyFile;  // TLS when caFile is set
  /// Receive buffer of the socket (SO_RCVBUF) in bytes, 0 = the system's. A small one models a
  /// device's TCP window (lwIP on the ESP32: CONFIG_LWIP_TCP_WND_DEFAULT = 5760).
  int tcpWindow = 0;
};

/// See file header.
class MosquittoTransport : public ota_core::Publisher {
 public:
  using MessageHandler = std::function<void(const ota_core::InboundMessage&)>;

  MosquittoTransport();
  ~MosquittoTransport() override;
  /// Connects, then subscribes to `topics` (QoS 1). False with `error` set on failure.
  bool connect(const TransportOptions& options, std::vector<std::string> topics, std::string& error);
  /// True once every subscription is granted.
  bool ready() const { return connected_ && subscribed_ == topics_.size() && !refused_; }
  /// A SUBACK refused one of the subscriptions.
  bool subscriptionRefused() const { return refused_; }

  // ---- task design ----
  /// Messages and link events go to `inbox` (set before startThread()).
  void deliverTo(ota_core::Inbox* inbox) { inbox_ = inbox; }
  /// Starts libmosquitto's network thread (reconnects by itself).
  bool startThread(std::string& error);

  // ---- inline design ----
  /// Messages go to `handler`, called on the thread that runs loop().
  void onMessage(MessageHandler handler) { handler_ = std::move(handler); }
  /// Runs the network loop for up to `timeoutMs`; false when the connection is lost for good.
  bool loop(int timeoutMs);

  /// QoS 1 publish with optional MQTT 5 Response Topic / Correlation Data.
  bool publish(const char* topic, const uint8_t* data, size_t size, const char* responseTopic,
               ota_core::Bytes correlation) override;
  /// Publishes not yet acknowledged by the broker.
  int inFlight() const { return inFlight_; }
  /// QoS 0 subscription to a shared image topic (protocol §11.4); its SUBACK does not count
  /// toward ready(). After a reconnect without a session the receiver task subscribes it again
  /// (LinkSession posts kLinkSessionLost), as on the ESP32; while disconnected it reports
  /// success, so that a transfer joining its stream then is rejoined on the next connect.
  bool subscribe(const char* topic) override;
  void unsubscribe(const char* topic) override;

 private:
  struct mosquitto* mosq_ = nullptr;
  bool mqtt5_ = true;
  bool threaded_ = false;
  std::atomic<bool> connected_{false};
  std::atomic<bool> refused_{false};
  std::atomic<size_t> subscribed_{0};
  /// What a (re)connect subscribes again and which link events it posts (link_session.h).
  ota_core::LinkSession session_{0};
  std::atomic<int> inFlight_{0};
  std::vector<std::string> topics_;
  /// The shared image topic, when one is subscribed, and the message id of its SUBSCRIBE (its
  /// SUBACK is no link subscription).
  std::string sharedTopic_;
  std::atomic<int> sharedMid_{-1};
  ota_core::Inbox* inbox_ = nullptr;
  MessageHandler handler_;
  /// esp-mqtt's API lock (see file header).
  FairRecursiveLock apiLock_;
  std::vector<uint8_t> storage_;
  std::unique_ptr<ota_core::MessageAssembler> assembler_;

  friend struct MosquittoCallbacks;
};

}  // namespace ota_host
