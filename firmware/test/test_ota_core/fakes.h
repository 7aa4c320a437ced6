// fakes.h: in-memory implementations of the four platform interfaces, with fault injection,
// and a scripted sender that builds MANIFEST/CHUNK/ERROR messages for a Receiver.
#pragma once

#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "ota_core/codec.h"
#include "ota_core/crc32.h"
#include "ota_core/crypto.h"
#include "ota_core/receiver.h"

namespace fakes {

using namespace ota_core;

/// RAM flash: sequential writes, read-back, write calls in `failAt` fail (1-based).
class FakeFlash : public FlashSink {
 public:
  explicit FakeFlash(uint32_t cap) : mem(cap, 0xFF) {}
  uint32_t capacity() const override { return static_cast<uint32_t>(mem.size()); }
  SinkResult begin(uint32_t size, ImageKind kind) override {
    ++begins;
    open = true, pos = 0, size_ = size, kind_ = kind, finished = false;
    return SinkResult::OK;
  }
  SinkResult resume(uint32_t offset, uint32_t size, ImageKind kind) override {
    ++resumes;
    open = true, pos = offset, size_ = size, kind_ = kind, finished = false;
    return SinkResult::OK;
  }
  SinkResult write(const uint8_t* d, size_t n) override {
    ++writeCalls;
    if (!open || pos + n > size_) return SinkResult::FAILED;
    if (failAt.count(writeCalls) != 0) return SinkResult::FAILED;
    if (pos == 0 && kind_ == ImageKind::ESP32_APP && d[0] != 0xE9) return SinkResult::IMAGE_INVALID;
    std::memcpy(mem.data() + pos, d, n);
    pos += static_cast<uint32_t>(n);
    return SinkResult::OK;
  }
  bool read(uint32_t off, uint8_t* out, size_t n) override {
    if (off + n > mem.size()) return false;
    std::memcpy(out, mem.data() + off, n);
    return true;
  }
  SinkResult finish() override {
    open = false;
    finished = pos == size_;
    return finished ? SinkResult::OK : SinkResult::FAILED;
  }
  bool activate() override {
    if (!finished) return false;
    ++activations;
    return true;
  }
  void abort() override {
    ++aborts;
    open = false;
  }

  std::vector<uint8_t> mem;
  std::set<uint32_t> failAt;
  uint32_t writeCalls = 0, begins = 0, resumes = 0, activations = 0, aborts = 0, pos = 0;
  bool open = false, finished = false;

 private:
  uint32_t size_ = 0;
  ImageKind kind_ = ImageKind::ESP32_APP;
};

struct Published {
  std::string topic;
  std::vector<uint8_t> data;
  std::string responseTopic;
  std::vector<uint8_t> correlation;
};

class FakePublisher : public Publisher {
 public:
  bool publish(const char* topic, const uint8_t* d, size_t n, const char* rt, Bytes corr) override {
    sent.push_back({topic, std::vector<uint8_t>(d, d + n), rt != nullptr ? rt : "",
                    std::vector<uint8_t>(corr.data, corr.data + corr.size)});
    return true;
  }
  bool subscribe(const char* topic) override {
    subscribed.push_back(topic);
    return canSubscribe;
  }
  void unsubscribe(const char* topic) override { unsubscribed.push_back(topic); }
  std::vector<Published> sent;
  /// Shared image topics (protocol §11.4) the receiver subscribed to and left, in order.
  std::vector<std::string> subscribed;
  std::vector<std::string> unsubscribed;
  bool canSubscribe = true;
};

class MemStore : public StateStore {
 public:
  bool load(ResumePoint& out) override {
    if (!point) return false;
    out = *point;
    return true;
  }
  bool save(const ResumePoint& p) override {
    point = p;
    ++saves;
    return true;
  }
  void clear() override { point.reset(); }
  std::optional<ResumePoint> point;
  uint32_t saves = 0;
};

class FakeClock : public Clock {
 public:
  uint32_t nowMs() override { return now; }
  uint32_t now = 1000;
};

/// A receiver wired to fakes plus a hand-driven sender for one image.
struct Harness {
  FakeFlash flash{1 << 20};
  FakePublisher pub;
  MemStore store;
  FakeClock clock;
  ReceiverConfig cfg;
  std::unique_ptr<Receiver> rx;
  std::vector<uint8_t> image;
  uint8_t sha[32] = {};
  uint32_t chunkSize = 1024;
  uint16_t window = 4;
  uint32_t transferId = 77;
  std::vector<uint8_t> signature;
  std::string ackTopic = "ota/dev/dev-1/ack/s1";
  std::vector<uint8_t> rxBuffer = std::vector<uint8_t>(kChunkHeaderBytes + 4096);

  explicit Harness(size_t size = 10000, uint32_t chunk = 1024, uint16_t win = 4)
      : chunkSize(chunk), window(win) {
    cfg.prefix = "ota";
    cfg.deviceId = "dev-1";
    cfg.product = "blink";
    cfg.currentVersion = "1.0.0";
    cfg.wantedVersion = "";
    cfg.chunkSize = chunk;
    cfg.window = win;
    cfg.maxChunkBytes = 4096;
    cfg.acceptGenericFile = true;
    setImage(size);
  }
  void setImage(size_t size) {
    image.resize(size);
    for (size_t i = 0; i < size; ++i) image[i] = static_cast<uint8_t>((i * 131) ^ (i >> 7));
    image[0] = 0xE9;
    Sha256 h;
    h.begin();
    h.update(image.data(), image.size());
    h.finish(sha);
  }
  Receiver& make() {
    rx = std::make_unique<Receiver>(cfg, flash, pub, store, clock);
    return *rx;
  }
  uint32_t chunkCount() const {
    return static_cast<uint32_t>((image.size() + chunkSize - 1) / chunkSize);
  }
  /// The REQUESTs the receiver published, decoded (views point into pub.sent).
  std::vector<Request> requests() {
    std::vector<Request> out;
    for (auto& p : pub.sent) {
      Request r;
      if (p.topic == "ota/dev/dev-1/req" && decodeRequest(p.data.data(), p.data.size(), r) == DecodeError::NONE) out.push_back(r);
    }
    return out;
  }
  std::vector<uint8_t> lastCorrelation() {
    for (auto it = pub.sent.rbegin(); it != pub.sent.rend(); ++it) {
      if (it->topic == "ota/dev/dev-1/req") return it->correlation;
    }
    return {};
  }
  std::vector<Ack> acks() {
    std::vector<Ack> out;
    for (auto& p : pub.sent) {
      Ack a;
      if (p.topic == ackTopic && decodeAck(p.data.data(), p.data.size(), a) == DecodeError::NONE) out.push_back(a);
    }
    return out;
  }
  std::vector<StatusCode> statuses() {
    std::vector<StatusCode> out;
    for (auto& p : pub.sent) {
      Status s;
      if (p.topic == ackTopic && decodeStatus(p.data.data(), p.data.size(), s) == DecodeError::NONE) out.push_back(s.status);
    }
    return out;
  }
  void deliver(const std::vector<uint8_t>& bytes, std::vector<uint8_t> corr,
               const std::string& topic = "ota/dev/dev-1/data") {
    InboundMessage m;
    m.topic = Bytes{reinterpret_cast<const uint8_t*>(topic.data()), topic.size()};
    m.payload = Bytes{bytes.data(), bytes.size()};
    m.correlation = Bytes{corr.data(), corr.size()};
    m.responseTopic = Bytes{reinterpret_cast<const uint8_t*>(ackTopic.data()), ackTopic.size()};
    rx->onMessage(m);
  }
  std::vector<uint8_t> manifestBytes(uint32_t startOffset,
                                     const std::function<void(Manifest&)>& tweak = nullptr) {
    Manifest m;
    m.transferId = transferId;
    std::memcpy(m.sha256, sha, 32);
    m.size = static_cast<uint32_t>(image.size());
    m.chunkSize = chunkSize;
    m.chunkCount = chunkCount();
    m.startOffset = startOffset;
    m.window = window;
    m.kind = ImageKind::ESP32_APP;
    m.name = bytesOf("blink.bin");
    m.product = bytesOf("blink");
    m.version = bytesOf("1.1.0");
    m.ackTopic = Bytes{reinterpret_cast<const uint8_t*>(ackTopic.data()), ackTopic.size()};
    m.signature = Bytes{signature.data(), signature.size()};
    if (tweak) tweak(m);
    std::vector<uint8_t> out(1024);
    out.resize(encodeManifest(m, out.data(), out.size()));
    return out;
  }
  void sendManifest(uint32_t startOffset = 0, const std::function<void(Manifest&)>& tweak = nullptr) {
    deliver(manifestBytes(startOffset, tweak), lastCorrelation());
  }
  std::vector<uint8_t> chunkBytes(uint32_t index, bool corrupt = false, uint32_t id = 0) {
    Chunk c;
    c.transferId = id != 0 ? id : transferId;
    c.index = index;
    c.offset = index * chunkSize;
    size_t len = std::min<size_t>(chunkSize, image.size() - c.offset);
    c.payload = Bytes{image.data() + c.offset, len};
    c.crc32 = crc32(0, c.payload.data, len) ^ (corrupt ? 1u : 0u);
    std::vector<uint8_t> out(kChunkHeaderBytes + len);
    out.resize(encodeChunk(c, out.data(), out.size()));
    return out;
  }
  void sendChunk(uint32_t index, bool corrupt = false) {
    deliver(chunkBytes(index, corrupt), lastCorrelation());
  }
  void sendAllFrom(uint32_t first) {
    for (uint32_t i = first; i < chunkCount(); ++i) sendChunk(i);
  }
  void sendError(ErrorCode code, uint32_t retryAfterMs, uint32_t id = 0) {
    ErrorMessage e;
    e.code = code;
    e.transferId = id;
    e.retryAfterMs = retryAfterMs;
    e.message = bytesOf("x");
    std::vector<uint8_t> out(64);
    out.resize(encodeError(e, out.data(), out.size()));
    deliver(out, lastCorrelation());
  }
  bool flashHoldsImage() const {
    return std::equal(image.begin(), image.end(), flash.mem.begin());
  }
};

}  // namespace fakes
