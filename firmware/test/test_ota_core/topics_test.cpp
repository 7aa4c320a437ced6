// topics_test.cpp: the topic builders and parsers of ota_core/topics.h against
// tests/vectors/topics.json (protocol §2), the same vectors the TypeScript topics run, and the
// message types each topic carries.
#include <gtest/gtest.h>

#include <string>

#include "json_mini.h"
#include "ota_core/topics.h"

using namespace ota_core;
using json_mini::Value;

namespace {

Value vectors() { return json_mini::parseFile(std::string(OTA_VECTORS_DIR) + "/topics.json"); }

TopicKind kindOf(const std::string& name) {
  if (name == "request") return TopicKind::REQUEST;
  if (name == "data") return TopicKind::DATA;
  if (name == "ack") return TopicKind::ACK;
  if (name == "status") return TopicKind::STATUS;
  if (name == "offer") return TopicKind::OFFER;
  if (name == "error") return TopicKind::ERROR;
  if (name == "image") return TopicKind::IMAGE;
  ADD_FAILURE() << "unknown topic kind in topics.json: " << name;
  return TopicKind::ERROR;
}

Bytes view(const std::string& s) { return Bytes{reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }

TEST(Topics, BuildDeviceTopicGivesEveryBuildVector) {
  Value doc = vectors();
  for (const Value& v : doc["build"].array) {
    char out[256];
    std::string sender = v.has("senderId") ? v["senderId"].string : "";
    size_t n = buildDeviceTopic(out, sizeof out, v["prefix"].string.c_str(),
                                v["deviceId"].string.c_str(), kindOf(v["kind"].string),
                                v.has("senderId") ? sender.c_str() : nullptr);
    EXPECT_EQ(std::string(out, n), v["topic"].string);
    EXPECT_EQ(n, v["topic"].string.size());
  }
}

TEST(Topics, ParseDeviceTopicGivesEveryParseVector) {
  Value doc = vectors();
  for (const Value& v : doc["parse"].array) {
    TopicKind kind{};
    Bytes sender;
    const std::string& topic = v["topic"].string;
    bool ok = parseDeviceTopic(view(topic), v["prefix"].string.c_str(),
                               v["deviceId"].string.c_str(), kind, sender);
    EXPECT_EQ(ok, !v["kind"].isNull()) << topic;
    if (ok && !v["kind"].isNull()) {
      EXPECT_EQ(kind, kindOf(v["kind"].string)) << topic;
      if (kind == TopicKind::ACK) {
        EXPECT_EQ(std::string(reinterpret_cast<const char*>(sender.data), sender.size),
                  v["senderId"].string);
      }
    }
    bool isAck = !v["kind"].isNull() && v["kind"].string == "ack";
    EXPECT_EQ(isAckTopicOf(view(topic), v["prefix"].string.c_str(), v["deviceId"].string.c_str()),
              isAck)
        << topic;
  }
}

TEST(Topics, BuildDeviceTopicRefusesWhatDoesNotFitOrBreaksTheIdRules) {
  char out[32];
  EXPECT_EQ(buildDeviceTopic(out, 18, "ota", "dev-1", TopicKind::DATA), 0u);  // 18 + NUL needed
  EXPECT_STREQ(out, "");
  EXPECT_EQ(buildDeviceTopic(out, 19, "ota", "dev-1", TopicKind::DATA), 18u);
  EXPECT_EQ(buildDeviceTopic(out, sizeof out, "ota", "dev 1", TopicKind::DATA), 0u);
  EXPECT_EQ(buildDeviceTopic(out, sizeof out, "ota/", "d", TopicKind::DATA), 0u);
  EXPECT_EQ(buildDeviceTopic(out, sizeof out, "o+", "d", TopicKind::DATA), 0u);
  EXPECT_EQ(buildDeviceTopic(out, sizeof out, "ota", "d", TopicKind::ACK), 0u);
  EXPECT_EQ(buildDeviceTopic(out, sizeof out, "ota", "d", TopicKind::ACK, "s/1"), 0u);
}

TEST(Topics, EachTopicCarriesOnlyTheTypesOfItsCarriesVector) {
  Value doc = vectors();
  const char* names[] = {"", "REQUEST", "MANIFEST", "ERROR", "CHUNK", "ACK", "STATUS", "OFFER"};
  for (const Value& v : doc["carries"].array) {
    TopicKind kind = kindOf(v["kind"].string);
    for (uint8_t type = 0; type <= 8; ++type) {
      bool listed = false;
      for (const Value& t : v["types"].array) listed = listed || (type >= 1 && type <= 7 && t.string == names[type]);
      if (type >= 1 && type <= 7) {
        EXPECT_EQ(carries(kind, static_cast<MessageType>(type)), listed) << v["kind"].string << " " << int(type);
      }
      const uint8_t header[] = {0x4F, 0x54, 0x01, type};
      MessageType got{};
      EXPECT_EQ(peekTypeOn(kind, header, sizeof header, got),
                listed ? DecodeError::NONE : DecodeError::UNEXPECTED_TYPE)
          << v["kind"].string << " " << int(type);
    }
  }
}

TEST(Topics, PeekTypeOnRefusesATypeTheTopicDoesNotCarry) {
  const uint8_t ack[] = {0x4F, 0x54, 0x01, 0x05};
  MessageType type{};
  EXPECT_EQ(peekTypeOn(TopicKind::DATA, ack, sizeof ack, type), DecodeError::UNEXPECTED_TYPE);
  EXPECT_EQ(peekTypeOn(TopicKind::ACK, ack, sizeof ack, type), DecodeError::NONE);
  EXPECT_EQ(type, MessageType::ACK);
}

TEST(Topics, BuildSharedImageTopicGivesEverySharedVector) {
  Value doc = vectors();
  for (const Value& v : doc["shared"].array) {
    std::vector<uint8_t> sha = json_mini::hex(v["sha256"].string);
    char out[256];
    size_t n = buildSharedImageTopic(out, sizeof out, v["prefix"].string.c_str(), sha.data(),
                                     static_cast<uint32_t>(v["streamId"].u64()));
    EXPECT_EQ(std::string(out, n), v["topic"].string);
    // One byte short of the topic and its NUL: nothing is written.
    EXPECT_EQ(buildSharedImageTopic(out, n, v["prefix"].string.c_str(), sha.data(),
                                    static_cast<uint32_t>(v["streamId"].u64())),
              0u);
  }
}

}  // namespace
