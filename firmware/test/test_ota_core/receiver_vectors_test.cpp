// receiver_vectors_test.cpp: runs the behaviour vectors (tests/vectors/receiver_*.json, format in
// tests/vectors/README.md) against the firmware core's Receiver, driven by the fakes of fakes.h: a
// clock the script advances (ticking every millisecond, as the device's task would), a publisher
// that records what the receiver sends, and a RAM flash that records writes and fails them on
// demand, and an HTTP downloader whose GETs the script's image server answers (the fetch loop of
// firmware/src/http_download.cpp over the core's onHttpFailure and HttpResumeKeeper). The
// simulator runs the same scripts in tests/receiver_vectors_test.ts.
#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <filesystem>
#include <string>
#include <vector>

#include "fakes.h"
#include "json_mini.h"
#include "ota_core/http_download.h"
#include "ota_core/topics.h"

using namespace ota_core;
using json_mini::Value;

namespace {

struct ScriptCase {
  std::string file;
  size_t index;
  std::string name;
};

void PrintTo(const ScriptCase& c, std::ostream* os) { *os << c.file << ": " << c.name; }

std::vector<std::string> vectorFiles() {
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(OTA_VECTORS_DIR)) {
    std::string n = e.path().filename().string();
    if (n.rfind("receiver_", 0) == 0 && n.size() > 5 && n.substr(n.size() - 5) == ".json") {
      files.push_back(n);
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::vector<ScriptCase> allScripts() {
  std::vector<ScriptCase> cases;
  for (const std::string& file : vectorFiles()) {
    Value doc = json_mini::parseFile(std::string(OTA_VECTORS_DIR) + "/" + file);
    const Value& scripts = doc["scripts"];
    for (size_t i = 0; i < scripts.array.size(); ++i) {
      std::string name = file.substr(0, file.size() - 5) + "_" + std::to_string(i);
      cases.push_back({file, i, name});
    }
  }
  return cases;
}

/// A field of the script's override object, else of the file's defaults.
const Value& field(const Value& defaults, const Value& script, const char* part, const char* key) {
  if (script.has(part) && script[part].has(key)) return script[part][key];
  return defaults[part][key];
}

Bytes view(const std::string& s) {
  return Bytes{reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

template <typename Code>
Code codeFromName(const std::string& name, unsigned last) {
  for (unsigned i = 0; i <= last; ++i) {
    if (name == toString(static_cast<Code>(i))) return static_cast<Code>(i);
  }
  throw std::runtime_error("unknown code name " + name);
}

/// The FakeFlash, recording the offset of every successful write.
class RecordingFlash : public fakes::FakeFlash {
 public:
  using FakeFlash::FakeFlash;
  SinkResult write(const uint8_t* d, size_t n) override {
    uint32_t at = pos;
    SinkResult r = FakeFlash::write(d, n);
    if (r == SinkResult::OK) writes.push_back(at);
    return r;
  }
  std::vector<uint32_t> writes;
};

/// The FakePublisher, recording subscribe and unsubscribe actions in one list, in order.
class RecordingPublisher : public fakes::FakePublisher {
 public:
  bool subscribe(const char* topic) override {
    actions.push_back(std::string("subscribe ") + topic);
    return FakePublisher::subscribe(topic);
  }
  void unsubscribe(const char* topic) override {
    actions.push_back(std::string("unsubscribe ") + topic);
    FakePublisher::unsubscribe(topic);
  }
  std::vector<std::string> actions;
};

/// The device's HTTP download (protocol §8.8) against the script's image server: each GET asks
/// from the bytes held and takes the next response of the `http` step; the loop is the one of
/// firmware/src/http_download.cpp (esp_https_ota), deciding with the core's onHttpFailure. The
/// slot it writes is `partition` (esp_https_ota writes the partition itself, not the FlashSink);
/// a download that ends with the right SHA-256 finishes the sink's slot, as esp_https_ota_finish.
class ScriptedDownloader : public HttpDownloader {
 public:
  ScriptedDownloader(const std::vector<uint8_t>& image, RecordingFlash& slot)
      : image_(image), slot_(slot), partition_(image.size()) {}
  std::deque<Value> responses;
  /// The offsets the answered GETs asked from (0: no Range), in order.
  std::vector<uint32_t> answered;

  HttpResult download(const HttpJob& job, HttpResumeKeeper& keeper) override {
    uint32_t held = job.from;
    uint32_t failures = job.failuresBefore;
    auto result = [&](StatusCode code, const char* detail) {
      HttpResult r;
      r.status = code;
      r.detail = detail;
      r.bytesWritten = held - job.from;
      return r;
    };
    for (;;) {
      if (responses.empty()) return result(StatusCode::ABORTED, "no response scripted for a GET");
      answered.push_back(held);
      Value r = responses.front();
      responses.pop_front();
      int status = static_cast<int>(r["status"].u64());
      uint32_t size = job.size;
      if (status == 200 || status == 206) {
        uint32_t from = status == 200 ? 0 : r.has("from") ? static_cast<uint32_t>(r["from"].u64()) : held;
        // A response counts only when it starts at the offset asked (§8.8).
        if (from == held && from < size) {
          uint32_t n = r.has("bytes") ? static_cast<uint32_t>(r["bytes"].u64()) : size - from;
          n = std::min(n, size - from);
          std::copy(image_.begin() + from, image_.begin() + from + n, partition_.begin() + from);
          if (r.has("tamper") && r["tamper"].boolean) partition_[from + (n >> 1)] ^= 0x01;
          held = from + n;
          failures = 0;
          keeper.written(held);
          if (held == size) {
            uint8_t digest[kSha256Bytes];
            Sha256 h;
            h.begin();
            h.update(partition_.data(), size);
            h.finish(digest);
            if (std::memcmp(digest, job.sha256, kSha256Bytes) != 0) {
              return result(StatusCode::HASH_MISMATCH, "sha256 differs");
            }
            slot_.finished = true;  // esp_https_ota_finish: the slot is complete and valid
            return result(StatusCode::VERIFIED, "");
          }
        }
      }
      ++failures;
      switch (onHttpFailure(status, failures)) {
        case HttpFailureAction::RETRY_WITH_RANGE:
          continue;
        case HttpFailureAction::ASK_AGAIN: {
          keeper.written(held);
          HttpResult again = result(StatusCode::ABORTED, "");
          again.askAgain = true;
          again.failuresInARow = failures;
          return again;
        }
        case HttpFailureAction::GIVE_UP:
          return result(StatusCode::ABORTED, "HTTP download failed kMaxHttpAttempts times in a row");
      }
    }
  }

 private:
  const std::vector<uint8_t>& image_;
  RecordingFlash& slot_;
  std::vector<uint8_t> partition_;
};

/// A MANIFEST with flag URL and a `url` of these bytes appended as a str16 (§4.2): built by
/// hand, so a step can send a url the encoder would refuse (too long, not UTF-8).
void appendUrl(std::vector<uint8_t>& manifest, const std::vector<uint8_t>& url) {
  manifest[59] |= 0x02;
  manifest.push_back(static_cast<uint8_t>(url.size()));
  manifest.push_back(static_cast<uint8_t>(url.size() >> 8));
  manifest.insert(manifest.end(), url.begin(), url.end());
}

std::string outcomeName(const Receiver& rx) {
  const Outcome& o = rx.outcome();
  if (rx.state() == State::VERIFIED) return "VERIFIED";
  if (o.noSender) return "NO_SENDER";
  if (o.upToDate) return "UP_TO_DATE";
  if (o.senderError) return toString(o.error);
  return toString(o.status);
}

class ReceiverVectors : public ::testing::TestWithParam<ScriptCase> {};

TEST_P(ReceiverVectors, BehavesAsTheScriptSays) {
  const ScriptCase& sc = GetParam();
  Value doc = json_mini::parseFile(std::string(OTA_VECTORS_DIR) + "/" + sc.file);
  const Value& defaults = doc["defaults"];
  const Value& script = doc["scripts"].array[sc.index];
  SCOPED_TRACE(script["name"].string);
  auto dev = [&](const char* k) -> const Value& { return field(defaults, script, "device", k); };
  auto tr = [&](const char* k) -> const Value& { return field(defaults, script, "transfer", k); };

  // The device.
  std::string prefix = dev("prefix").string, deviceId = dev("deviceId").string;
  std::string product = dev("product").string, current = dev("currentVersion").string;
  std::string wanted = dev("wantedVersion").string;
  std::string reqTopic = prefix + "/dev/" + deviceId + "/req";
  std::string dataTopic = prefix + "/dev/" + deviceId + "/data";
  std::string errorTopic = prefix + "/dev/" + deviceId + "/error";
  std::string offerTopic = prefix + "/dev/" + deviceId + "/offer";
  RecordingFlash flash(static_cast<uint32_t>(dev("slotBytes").u64()));
  RecordingPublisher pub;
  fakes::MemStore store;
  fakes::FakeClock clock;
  SignatureVerifier verifier;
  ReceiverConfig cfg;
  cfg.prefix = prefix.c_str();
  cfg.deviceId = deviceId.c_str();
  cfg.product = product.c_str();
  cfg.currentVersion = current.c_str();
  cfg.wantedVersion = wanted.c_str();
  cfg.chunkSize = static_cast<uint32_t>(dev("chunkSize").u64());
  cfg.window = static_cast<uint16_t>(dev("window").u64());
  cfg.maxChunkBytes = kDefaultChunkBytes;
  cfg.mqtt5 = dev("mqtt").u64() == 5;
  cfg.shared = ((script.has("device") && script["device"].has("shared")) ||
                defaults["device"].has("shared")) &&
               dev("shared").boolean;
  cfg.acceptEsp32App = cfg.acceptGenericFile = false;
  for (const Value& k : dev("kinds").array) {
    (k.u64() == 0 ? cfg.acceptEsp32App : cfg.acceptGenericFile) = true;
  }
  std::string pem;
  if (!dev("publicKeyPem").isNull()) {
    pem = dev("publicKeyPem").string;
    ASSERT_TRUE(verifier.loadPublicKey(reinterpret_cast<const uint8_t*>(pem.c_str()), pem.size() + 1));
    cfg.verifier = &verifier;
  }
  // The random source returns offerDraw × 2^32 on every draw (README: the delay after an OFFER).
  bool hasDraw = (script.has("device") && script["device"].has("offerDraw")) ||
                 defaults["device"].has("offerDraw");
  uint32_t drawn = hasDraw ? static_cast<uint32_t>(dev("offerDraw").number * 4294967296.0)
                           : 0x80000000u;
  cfg.random = [](void* ctx) { return *static_cast<uint32_t*>(ctx); };
  cfg.randomContext = &drawn;

  // The image and what the sender announces.
  uint32_t size = static_cast<uint32_t>(tr("size").u64());
  uint32_t chunkSize = static_cast<uint32_t>(tr("chunkSize").u64());
  std::vector<uint8_t> image(size);
  for (uint32_t i = 0; i < size; ++i) image[i] = static_cast<uint8_t>(i * 7 + 3);
  image[0] = 0xE9;
  // §8.8: a vector device follows URL MANIFESTs ("follow", the default), also asks for them
  // ("ask", REQUEST flag HTTP) or cannot download over HTTP ("none": no downloader).
  ScriptedDownloader downloader(image, flash);
  bool hasHttp = (script.has("device") && script["device"].has("http")) ||
                 defaults["device"].has("http");
  std::string http = hasHttp ? dev("http").string : "follow";
  cfg.httpDownloader = http == "none" ? nullptr : &downloader;
  cfg.askHttp = http == "ask";
  Receiver rx(cfg, flash, pub, store, clock);
  ASSERT_TRUE(rx.configValid());

  uint8_t imageSha[32];
  Sha256 h;
  h.begin();
  h.update(image.data(), image.size());
  h.finish(imageSha);
  uint32_t currentTransferId = static_cast<uint32_t>(tr("transferId").u64());
  std::string ackTopic = tr("ackTopic").string;
  // The stream the last MANIFEST announced (§11): its id and topic.
  uint32_t streamId = 0;
  std::string streamTopic;

  auto ourCorrelation = [&]() -> std::vector<uint8_t> {
    for (auto it = pub.sent.rbegin(); it != pub.sent.rend(); ++it) {
      if (it->topic == reqTopic) return it->correlation;
    }
    return std::vector<uint8_t>(8, 0);
  };
  auto correlationFor = [&](const Value& step) -> std::vector<uint8_t> {
    std::string which = step.has("correlation") ? step["correlation"].string : "ours";
    if (which == "none" || !cfg.mqtt5) return {};  // MQTT 3.1.1 carries no properties
    std::vector<uint8_t> c = ourCorrelation();
    if (which == "other") for (uint8_t& b : c) b ^= 0x5A;
    return c;
  };
  auto deliver = [&](const std::string& topic, const std::vector<uint8_t>& payload,
                     const std::vector<uint8_t>& corr, const std::string& responseTopic) {
    InboundMessage m;
    m.topic = view(topic);
    m.payload = Bytes{payload.data(), payload.size()};
    m.correlation = Bytes{corr.data(), corr.size()};
    m.responseTopic = cfg.mqtt5 ? view(responseTopic) : Bytes{};
    rx.onMessage(m);
  };

  const std::vector<Value>& steps = script["steps"].array;
  for (size_t i = 0; i < steps.size(); ++i) {
    const Value& step = steps[i];
    SCOPED_TRACE("step " + std::to_string(i));
    size_t sentBefore = pub.sent.size();
    size_t writesBefore = flash.writes.size();
    size_t actionsBefore = pub.actions.size();
    size_t fetchesBefore = downloader.answered.size();
    if (step.has("start")) {
      rx.start();
    } else if (step.has("manifest")) {
      const Value& s = step["manifest"];
      auto get = [&](const char* k) -> const Value& { return s.has(k) ? s[k] : tr(k); };
      std::vector<uint8_t> sha = s.has("sha256") ? json_mini::hex(s["sha256"].string)
                                                 : std::vector<uint8_t>(imageSha, imageSha + 32);
      std::vector<uint8_t> sig = json_mini::hex(get("signature").string);
      std::string name = get("name").string, prod = get("product").string;
      std::string version = get("version").string, body = get("ackTopic").string;
      Manifest m;
      m.transferId = static_cast<uint32_t>(get("transferId").u64());
      std::memcpy(m.sha256, sha.data(), 32);
      m.size = static_cast<uint32_t>(get("size").u64());
      m.chunkSize = static_cast<uint32_t>(get("chunkSize").u64());
      m.chunkCount = (m.size + m.chunkSize - 1) / m.chunkSize;
      m.startOffset = s.has("startOffset") ? static_cast<uint32_t>(s["startOffset"].u64()) : 0;
      m.window = static_cast<uint16_t>(get("window").u64());
      m.kind = static_cast<ImageKind>(get("kind").u64());
      m.name = view(name);
      m.product = view(prod);
      m.version = view(version);
      m.ackTopic = view(body);
      m.signature = Bytes{sig.data(), sig.size()};
      if (s.has("shared")) {
        streamId = static_cast<uint32_t>(s["shared"]["streamId"].u64());
        char built[kMaxSharedTopicBytes];
        size_t n = buildSharedImageTopic(built, sizeof built, prefix.c_str(), m.sha256, streamId);
        streamTopic = s["shared"].has("topic") ? s["shared"]["topic"].string : std::string(built, n);
        m.shared = true;
        m.streamId = streamId;
        m.sharedTopic = view(streamTopic);
      }
      std::vector<uint8_t> out(1024);
      out.resize(encodeManifest(m, out.data(), out.size()));
      ASSERT_FALSE(out.empty());
      if (s.has("url") || s.has("urlHex")) {
        ASSERT_FALSE(m.shared) << "a step gives both a url and a stream";
        appendUrl(out, s.has("urlHex") ? json_mini::hex(s["urlHex"].string)
                                       : std::vector<uint8_t>(s["url"].string.begin(),
                                                              s["url"].string.end()));
      }
      currentTransferId = m.transferId;
      std::string responseTopic = s.has("responseTopic") ? s["responseTopic"].string : body;
      ackTopic = body;
      deliver(dataTopic, out, correlationFor(s), responseTopic);
    } else if (step.has("chunk")) {
      const Value& s = step["chunk"];
      uint32_t index = static_cast<uint32_t>(s["index"].u64());
      uint32_t start = index * chunkSize;
      std::vector<uint8_t> payload(image.begin() + start,
                                   image.begin() + std::min(start + chunkSize, size));
      if (s.has("tamper") && s["tamper"].boolean) payload[payload.size() >> 1] ^= 0x01;
      Chunk c;
      bool shared = s.has("shared") && s["shared"].boolean;
      c.transferId = s.has("transferId") ? static_cast<uint32_t>(s["transferId"].u64())
                     : shared            ? streamId
                                         : currentTransferId;
      c.index = index;
      c.offset = s.has("offset") ? static_cast<uint32_t>(s["offset"].u64()) : start;
      c.payload = Bytes{payload.data(), payload.size()};
      c.crc32 = crc32(0, payload.data(), payload.size()) ^
                (s.has("crc") && s["crc"].string == "bad" ? 1u : 0u);
      std::vector<uint8_t> out(kChunkHeaderBytes + payload.size());
      out.resize(encodeChunk(c, out.data(), out.size()));
      if (shared) {
        // §11.4: on the shared topic, without properties.
        InboundMessage m;
        m.topic = view(streamTopic);
        m.payload = Bytes{out.data(), out.size()};
        rx.onMessage(m);
      } else {
        deliver(dataTopic, out, correlationFor(s), ackTopic);
      }
    } else if (step.has("error")) {
      const Value& s = step["error"];
      ErrorMessage e;
      e.code = codeFromName<ErrorCode>(s["code"].string, 32);
      e.transferId = s.has("transferId") ? static_cast<uint32_t>(s["transferId"].u64()) : 0;
      e.retryAfterMs = s.has("retryAfterMs") ? static_cast<uint32_t>(s["retryAfterMs"].u64()) : 0;
      e.message = bytesOf("error from the script");
      std::vector<uint8_t> out(128);
      out.resize(encodeError(e, out.data(), out.size()));
      bool onError = s.has("topic") && s["topic"].string == "error";
      deliver(onError ? errorTopic : dataTopic, out, correlationFor(s), "");
    } else if (step.has("offer")) {
      const Value& s = step["offer"];
      std::vector<uint8_t> out;
      if (s.has("hex")) {
        out = json_mini::hex(s["hex"].string);
      } else {
        std::string prod = s.has("product") ? s["product"].string : tr("product").string;
        std::string version = s.has("version") ? s["version"].string : tr("version").string;
        std::string rollout = s.has("rolloutId") ? s["rolloutId"].string : "r-1";
        Offer o;
        o.jitterMs = s.has("jitterMs") ? static_cast<uint32_t>(s["jitterMs"].u64()) : 1000;
        std::memcpy(o.sha256, imageSha, 32);
        o.size = s.has("size") ? static_cast<uint32_t>(s["size"].u64()) : size;
        o.kind = static_cast<ImageKind>(s.has("kind") ? s["kind"].u64() : tr("kind").u64());
        o.rolloutId = view(rollout);
        o.product = view(prod);
        o.version = view(version);
        out.resize(kMaxOfferBytes);
        out.resize(encodeOffer(o, out.data(), out.size()));
        ASSERT_FALSE(out.empty());
      }
      bool onData = s.has("topic") && s["topic"].string == "data";
      deliver(onData ? dataTopic : offerTopic, out, {}, "");
    } else if (step.has("http")) {
      const std::vector<Value>& rs = step["http"]["responses"].array;
      downloader.responses.assign(rs.begin(), rs.end());
      rx.runPendingHttpDownload();  // the platform runs the download the MANIFEST asked for
      downloader.responses.clear();
    } else if (step.has("advance")) {
      // The device's task ticks often; every millisecond here, so due times are exact. An
      // advance of 0 is one tick at the same time (what is due now fires).
      if (step["advance"].u64() == 0) rx.tick(clock.now);
      for (uint64_t t = 0; t < step["advance"].u64(); ++t) rx.tick(++clock.now);
    } else if (step.has("failWrites")) {
      for (uint64_t k = 1; k <= step["failWrites"].u64(); ++k) {
        flash.failAt.insert(flash.writeCalls + static_cast<uint32_t>(k));
      }
    } else {
      FAIL() << "unknown step";
    }

    // What the receiver published during the step, as the vectors write it.
    const Value& expect = step["expect"];
    std::vector<std::string> got, want;
    for (size_t k = sentBefore; k < pub.sent.size(); ++k) {
      const fakes::Published& p = pub.sent[k];
      Request r;
      Ack a;
      Status st;
      if (decodeRequest(p.data.data(), p.data.size(), r) == DecodeError::NONE) {
        // RESUME shows as the resume offset; the other flag bits by name (§4.1).
        got.push_back(p.topic + " REQUEST resume=" +
                      (r.hasResume ? std::to_string(r.resumeOffset) : "null") + " flags=" +
                      (r.wantsHttp ? "HTTP," : "") + (r.shared ? "SHARED," : ""));
      } else if (decodeAck(p.data.data(), p.data.size(), a) == DecodeError::NONE) {
        got.push_back(p.topic + " ACK " + std::to_string(a.nextIndex) + " " + toString(a.nack));
      } else if (decodeStatus(p.data.data(), p.data.size(), st) == DecodeError::NONE) {
        got.push_back(p.topic + " STATUS " + toString(st.status));
      } else {
        got.push_back(p.topic + " UNDECODABLE");
      }
    }
    if (expect.has("out")) {
      for (const Value& o : expect["out"].array) {
        const std::string& type = o["type"].string;
        if (type == "REQUEST") {
          std::string flags;
          if (o.has("flags")) {
            for (const Value& f : o["flags"].array) flags += f.string + ",";
          }
          want.push_back(reqTopic + " REQUEST resume=" +
                         (o["resumeOffset"].isNull() ? "null" : std::to_string(o["resumeOffset"].u64())) +
                         " flags=" + flags);
        } else if (type == "ACK") {
          want.push_back(ackTopic + " ACK " + std::to_string(o["nextIndex"].u64()) + " " +
                         o["nack"].string);
        } else {
          want.push_back(ackTopic + " STATUS " + o["status"].string);
        }
      }
    }
    EXPECT_EQ(got, want) << "published";
    std::vector<uint32_t> wroteNow(flash.writes.begin() + static_cast<long>(writesBefore),
                                   flash.writes.end());
    std::vector<uint32_t> wantWrites;
    if (expect.has("writes")) {
      for (const Value& w : expect["writes"].array) wantWrites.push_back(static_cast<uint32_t>(w.u64()));
    }
    // In an HTTP step the download writes pieces of its own size: the offsets asked show progress.
    if (!step.has("http")) {
      EXPECT_EQ(wroteNow, wantWrites) << "writes";
    }
    std::vector<std::string> actions(pub.actions.begin() + static_cast<long>(actionsBefore),
                                     pub.actions.end());
    std::vector<std::string> wantActions;
    if (expect.has("subscriptions")) {
      for (const Value& a : expect["subscriptions"].array) {
        wantActions.push_back(a.has("subscribe") ? "subscribe " + a["subscribe"].string
                                                 : "unsubscribe " + a["unsubscribe"].string);
      }
    }
    EXPECT_EQ(actions, wantActions) << "subscriptions";
    std::vector<uint32_t> fetched(downloader.answered.begin() + static_cast<long>(fetchesBefore),
                                  downloader.answered.end());
    std::vector<uint32_t> wantFetches;
    if (expect.has("fetches")) {
      for (const Value& f : expect["fetches"].array) wantFetches.push_back(static_cast<uint32_t>(f.u64()));
    }
    EXPECT_EQ(fetched, wantFetches) << "GETs";
    EXPECT_STREQ(toString(rx.state()), expect["state"].string.c_str()) << "state";
    if (expect.has("outcome")) {
      EXPECT_EQ(outcomeName(rx), expect["outcome"].string) << "outcome";
    }
    if (::testing::Test::HasFailure()) return;  // later steps only repeat the first difference
  }
  // VERIFIED promises a boot switch (§8); nothing else may switch it.
  EXPECT_EQ(flash.activations, rx.state() == State::VERIFIED ? 1u : 0u);
}

INSTANTIATE_TEST_SUITE_P(Behaviour, ReceiverVectors, ::testing::ValuesIn(allScripts()),
                         [](const ::testing::TestParamInfo<ScriptCase>& info) {
                           return info.param.name;
                         });

}  // namespace
