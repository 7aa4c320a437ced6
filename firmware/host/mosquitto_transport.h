// mosquitto_transport.h: the host's MQTT adapter (libmosquitto, MQTT 5 or 3.1.1). Owns the only
// libmosquitto calls of the host receiver; the single-threaded loop (mosquitto_loop) calls back
// into the caller, so publish() and the receiver run on one thread as on the ESP32.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ota_core/assembler.h"
#include "ota_core/platform.h"

struct mosquitto;

namespace ota_host {

/// Connection settings.
struct TransportOptions {
  std::string host = "127.0.0.1";
  int port = 1883;
  std::string clientId;
  bool mqtt5 = true;
  std::string caFile, certFile, keyFile;  // TLS when caFile is set
};

/// See file header.
class MosquittoTransport : public ota_core::Publisher {
 public:
  using MessageHandler = std::function<void(const ota_core::InboundMessage&)>;

  MosquittoTransport();
  ~MosquittoTransport() override;
  /// Connects, then subscribes to `topics` (QoS 1). False with `error` set on failure.
  bool connect(const TransportOptions& options, std::vector<std::string> topics, std::string& error);
  /// True once every subscription is acknowledged.
  bool ready() const { return subscribed_ == topics_.size() && connected_; }
  /// Runs the network loop for up to `timeoutMs`; false when the connection is lost for good.
  bool loop(int timeoutMs);
  void onMessage(MessageHandler handler) { handler_ = std::move(handler); }
  /// QoS 1 publish with optional MQTT 5 Response Topic / Correlation Data.
  bool publish(const char* topic, const uint8_t* data, size_t size, const char* responseTopic,
               ota_core::Bytes correlation) override;
  /// Publishes not yet acknowledged by the broker.
  int inFlight() const { return inFlight_; }

 private:
  struct mosquitto* mosq_ = nullptr;
  bool mqtt5_ = true;
  bool connected_ = false;
  size_t subscribed_ = 0;
  int inFlight_ = 0;
  std::vector<std::string> topics_;
  MessageHandler handler_;
  std::vector<uint8_t> storage_;
  std::unique_ptr<ota_core::MessageAssembler> assembler_;

  friend struct MosquittoCallbacks;
};

}  // namespace ota_host
