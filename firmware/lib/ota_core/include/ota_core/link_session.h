// ota_core/link_session.h: what the MQTT link does when the connection comes (back) up, decided
// once for every platform. The glue (firmware/src/mqtt_link.cpp on esp-mqtt,
// firmware/host/mosquitto_transport.cpp on libmosquitto) feeds it the client library's events on
// its network task and posts the LinkEvent bits it returns to the Inbox.
//
// The rule: a CONNECTED whose CONNACK says the broker kept no session (session present 0) means
// every subscription made before is gone: the link's own topics, which the network task
// subscribes again at once, and the shared image topic of a transfer (protocol §11.4), which only
// the receiver task subscribes (it owns the transfer and the topic). So when the last link SUBACK
// arrives the network task posts kLinkReady with kLinkSessionLost, and the receiver task, on that
// event, subscribes the active shared topic again (Receiver::onSessionLost). Without it the
// transfer silently lapsed to unicast after a reconnect. A CONNECTED with a session kept (a
// client configured with a persistent session) leaves every subscription in place: the link is
// ready at once and nothing is subscribed again.
//
// Neither client library subscribes again on its own: esp-mqtt's esp_mqtt_task (mqtt_client.c)
// sends CONNECT with Clean Start from `clean_session` (default true unless
// session.disable_clean_session; lib/mqtt5_msg.c sets MQTT5_CONNECT_FLAG_CLEAN_SESSION) and, after
// a reconnect, only raises MQTT_EVENT_CONNECTED with event->session_present (from the CONNACK's
// acknowledge flags: esp_mqtt5_parse_connack in mqtt5_client.c for MQTT 5,
// mqtt_get_connect_session_present for 3.1.1); libmosquitto passes the same flags to its connect
// callback.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ota_core/inbox.h"

namespace ota_core {

/// See file header. Network task only (one instance per connection).
class LinkSession {
 public:
  /// `linkTopics`: how many topics the link subscribes itself (data, error, offer).
  explicit LinkSession(size_t linkTopics) : linkTopics_(linkTopics) {}

  /// What a CONNECTED asks of the glue.
  struct Connected {
    /// Subscribe the link's topics now (each SUBACK then goes to onLinkSuback()).
    bool subscribeLinkTopics;
    /// LinkEvent bits to post now (0 when they follow the SUBACKs).
    uint32_t events;
  };

  /// The connection is up; `sessionPresent` is the CONNACK's session present flag.
  Connected onConnected(bool sessionPresent) {
    acked_ = 0;
    refused_ = false;
    if (sessionPresent) return Connected{false, kLinkReady};
    return Connected{true, 0};
  }

  /// A SUBACK of one of the link's own topics (`refused`: a reason code >= 0x80). Returns the
  /// LinkEvent bits to post: after the last one, ready (or refused) and the session lost.
  uint32_t onLinkSuback(bool refused) {
    if (refused) refused_ = true;
    if (++acked_ != linkTopics_) return 0;
    return (refused_ ? kLinkSubscribeRefused : kLinkReady) | kLinkSessionLost;
  }

  /// The connection is down.
  uint32_t onDisconnected() {
    acked_ = 0;
    return kLinkDown;
  }

 private:
  size_t linkTopics_;
  size_t acked_ = 0;
  bool refused_ = false;
};

}  // namespace ota_core
