// receiver_driver.cpp: see receiver_driver.h. The sender side is a small model (transfer id,
// chunk size, next chunk to send) kept here; the receiver side is the real core on the fakes of
// firmware/test/test_ota_core/fakes.h.
#include "receiver_driver.h"

#include <cstring>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "fakes.h"
#include "ota_core/assembler.h"
#include "ota_core/inbox.h"
#include "ota_core/os.h"
#include "ota_core/crc32.h"
#include "ota_core/crypto.h"
#include "ota_core/receiver.h"
#include "ota_core/topics.h"

namespace ota_fuzz {
namespace {

using namespace ota_core;

constexpr const char* kPrefix = "ota";
constexpr const char* kDeviceId = "dev-1";
constexpr const char* kProduct = "blink";
constexpr const char* kCurrentVersion = "1.0.0";
constexpr const char* kNewVersion = "1.1.0";
constexpr const char* kAckTopic = "ota/dev/dev-1/ack/s1";
constexpr const char* kOtherDataTopic = "ota/dev/dev-2/data";
constexpr const char* kOtherAckTopic = "ota/dev/dev-2/ack/s1";
constexpr uint32_t kFirstTransferId = 77;
/// Chunk sizes of the MANIFEST tweak (tweaks bits 3-4); 0 keeps the current one, 2048 is larger
/// than the receive buffer.
constexpr uint32_t kTweakChunkBytes[] = {0, 256, 512, 2048};
/// Most chunks an image in the fake flash can have: no ACK may name an index beyond it.
constexpr uint32_t kMaxFuzzChunks = kFuzzFlashBytes / kMinChunkBytes;
/// Messages one single-message record may draw (an ACK, a STATUS, a REQUEST and slack).
constexpr size_t kMaxRepliesPerRecord = 4;
/// The device key of setup::kSigned and the signature of the kSignedImageBytes image under it
/// (made once with the throw-away key generator of test_keys.h).
constexpr char kSigningKeyPem[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEjTqaAWWI1qgz9A89Vd479VJ9rBJh\n"
    "chMmp7bV89k93fa5FE/U6JjaKK5yyelcf7pwMg76K00BGGzJp9XdO8rceA==\n"
    "-----END PUBLIC KEY-----\n";
constexpr uint8_t kImageSignature[kSignatureBytes] = {
    0x5b, 0x93, 0x1b, 0xd9, 0x85, 0x15, 0x78, 0xcb, 0xed, 0xcb, 0x1c, 0xc0, 0xff, 0x1b, 0x2a, 0xf4,
    0x5f, 0xf4, 0x3f, 0x15, 0x98, 0x77, 0x83, 0xca, 0x38, 0x74, 0x38, 0xe0, 0xde, 0x2a, 0x20, 0xab,
    0x53, 0x8f, 0x75, 0x56, 0x30, 0x6f, 0x50, 0x86, 0x5d, 0xfd, 0x4d, 0xe0, 0xaf, 0xfc, 0x73, 0xa5,
    0x7d, 0x84, 0xee, 0xde, 0x53, 0x7e, 0xcd, 0xce, 0x89, 0x49, 0xd3, 0x99, 0x02, 0xfc, 0x46, 0xfd};

/// The verifier of setup::kSigned, loaded once: key parsing allocates (start-up only, like a
/// device).
const SignatureVerifier& deviceVerifier() {
  static SignatureVerifier* verifier = [] {
    auto* v = new SignatureVerifier();
    v->loadPublicKey(reinterpret_cast<const uint8_t*>(kSigningKeyPem), sizeof kSigningKeyPem);
    return v;
  }();
  return *verifier;
}

/// Storage of the MessageAssembler: a CHUNK header and the largest accepted payload.
constexpr size_t kAssemblerBytes = kChunkHeaderBytes + kFuzzMaxChunkBytes;

Bytes view(const std::string& s) {
  return Bytes{reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
Bytes view(const std::vector<uint8_t>& v) { return Bytes{v.data(), v.size()}; }

/// Slots of the driver's Inbox: the fewest a device may have, so a held message fills the pool.
constexpr size_t kInboxSlots = kMinInboxSlots;

/// The OsQueue of one task: the driver is the network task and the receiver task in turn, so a
/// queue never waits (an empty one answers at once, as after a timeout).
class RingQueue : public OsQueue {
 public:
  explicit RingQueue(size_t capacity) : capacity_(capacity) {}
  bool trySend(uint32_t item) override {
    if (items_.size() >= capacity_) return false;
    items_.push_back(item);
    return true;
  }
  bool receive(uint32_t& item, uint32_t /*timeoutMs*/) override {
    if (items_.empty()) return false;
    item = items_.front();
    items_.pop_front();
    return true;
  }

 private:
  size_t capacity_;
  std::deque<uint32_t> items_;
};

/// Which Correlation Data a message carries.
enum class Corr : uint8_t { OURS, NONE, FOREIGN, TOO_LONG };

/// One run: the receiver, its fakes, the image and the sender's model of the transfer.
class World {
 public:
  World(uint8_t setupBits, uint32_t imageBytes, uint32_t chunkBytes, uint8_t faults,
        uint16_t window)
      : flash_(kFuzzFlashBytes), bits_(setupBits), window_(window), chunkSize_(chunkBytes) {
    if ((bits_ & setup::kSigned) != 0) imageBytes = kSignedImageBytes;
    image_.resize(imageBytes);
    for (size_t i = 0; i < image_.size(); ++i) {
      image_[i] = static_cast<uint8_t>((i * 131) ^ (i >> 7) ^ imageBytes);
    }
    // An ESP32 app image starts with its magic byte; the fake flash refuses one that does not.
    image_[0] = faults == faults::kBadImageHeader ? 0x00 : 0xE9;
    if (faults == faults::kWrites235Fail) flash_.failAt = {2, 3, 5};
    if (faults == faults::kWrites234Fail) flash_.failAt = {2, 3, 4};
    Sha256 h;
    h.begin();
    h.update(image_.data(), image_.size());
    h.finish(sha_);

    cfg_.prefix = kPrefix;
    cfg_.deviceId = kDeviceId;
    cfg_.product = kProduct;
    cfg_.currentVersion = kCurrentVersion;
    cfg_.wantedVersion = (bits_ & setup::kPinnedVersion) != 0 ? kNewVersion : "";
    cfg_.chunkSize = chunkBytes;
    cfg_.window = window;
    cfg_.maxChunkBytes = kFuzzMaxChunkBytes;
    cfg_.mqtt5 = (bits_ & setup::kMqtt311) == 0;
    cfg_.acceptGenericFile = (bits_ & setup::kAcceptGeneric) != 0;
    cfg_.declineCurrentVersion = (bits_ & setup::kTakeCurrentVersion) == 0;
    if ((bits_ & setup::kSigned) != 0) {
      cfg_.verifier = &deviceVerifier();
      cfg_.requireSignature = true;
    }
    if ((bits_ & setup::kStoredResume) != 0) {
      // A previous boot wrote half the image and saved its resume point (protocol §9).
      ResumePoint point;
      std::memcpy(point.sha256, sha_, kSha256Bytes);
      point.offset = imageBytes / 2;
      point.size = imageBytes;
      point.kind = kind();
      std::strncpy(point.product, kProduct, kMaxProductBytes);
      std::strncpy(point.version, kNewVersion, kMaxVersionBytes);
      store_.point = point;
      std::memcpy(flash_.mem.data(), image_.data(), point.offset);
    }
    rx_.reset(new Receiver(cfg_, flash_, pub_, store_, clock_));
  }

  Receiver& rx() { return *rx_; }

  /// A power cut: a new receiver over the same flash and state store (protocol §9), whose
  /// flash handle is closed.
  void reboot() {
    flash_.open = false;
    rx_.reset(new Receiver(cfg_, flash_, pub_, store_, clock_));
  }
  fakes::FakeClock& clock() { return clock_; }
  bool mqtt5() const { return cfg_.mqtt5; }

  /// The start of every run: REQUEST, then (unless the input says not to) its MANIFEST.
  void begin() {
    rx_->start();
    if ((bits_ & setup::kNoManifest) != 0) return;
    uint32_t start = 0;
    Request req;
    if (lastRequest(req) && req.hasResume && req.resumeOffset < image_.size() &&
        req.resumeOffset % chunkSize_ == 0) {
      start = req.resumeOffset;
    }
    sendManifest(kFirstTransferId, start, chunkSize_, kAckTopic, kProduct, kNewVersion, false,
                 Corr::OURS);
  }

  void raw(FuzzInput& in, uint8_t param) {
    uint8_t topicSel = param & 3;
    std::string topic = topicSel == 0   ? rx_->dataTopic()
                        : topicSel == 1 ? rx_->errorTopic()
                        : topicSel == 2 ? kOtherDataTopic
                                        : rx_->requestTopic();
    Corr corr = static_cast<Corr>((param >> 2) & 3);
    bool fragmented = (param & 16) != 0;
    size_t fragment = fragmented ? in.u8() + 1u : 0;
    uint8_t glitch = fragmented ? in.u8() : 0;
    std::vector<uint8_t> msg = in.bytes(in.u16());
    if (fragmented) {
      deliverInFragments(topic, msg, corr, fragment, glitch);
    } else {
      deliver(topic, msg, corr);
    }
  }

  void chunk(uint8_t index, uint8_t param) {
    Corr corr = (param & 4) != 0 ? Corr::NONE : (param & 8) != 0 ? Corr::FOREIGN : Corr::OURS;
    deliver(rx_->dataTopic(),
            chunkBytes(index, (param & 1) != 0, (param & 2) != 0 ? transferId_ + 1 : transferId_),
            corr);
  }

  /// The sender's next `count` chunks in order; a NACK rewinds it to the NACKed index.
  void run(uint32_t count) {
    for (uint32_t i = 0; i < count && next_ < chunkCount(); ++i) {
      size_t before = pub_.sent.size();
      deliver(rx_->dataTopic(), chunkBytes(next_, false, transferId_), Corr::OURS);
      ++next_;
      for (size_t k = before; k < pub_.sent.size(); ++k) {
        Ack ack;
        const fakes::Published& p = pub_.sent[k];
        if (decodeAck(p.data.data(), p.data.size(), ack) == DecodeError::NONE &&
            ack.nack != NackReason::NONE) {
          next_ = ack.nextIndex;
        }
      }
    }
  }

  void manifest(uint8_t param, uint8_t id, uint8_t startChunk, uint8_t tweaks) {
    uint32_t transferId = (param & 1) != 0 ? 100u + id : transferId_;
    uint32_t chunkBytes = kTweakChunkBytes[(tweaks >> 3) & 3];
    if (chunkBytes == 0) chunkBytes = chunkSize_;
    uint32_t count = static_cast<uint32_t>((image_.size() + chunkBytes - 1) / chunkBytes);
    uint32_t start = (param & 2) != 0 ? (startChunk % count) * chunkBytes : 0;
    Corr corr = (tweaks & 1) != 0 ? Corr::NONE : (tweaks & 2) != 0 ? Corr::FOREIGN : Corr::OURS;
    sendManifest(transferId, start, chunkBytes, (param & 16) != 0 ? kOtherAckTopic : kAckTopic,
                 (param & 8) != 0 ? "other" : kProduct,
                 (param & 4) != 0 ? kCurrentVersion : kNewVersion, (tweaks & 4) != 0, corr);
  }

  void error(uint8_t code, uint32_t retryAfterMs, uint8_t flags) {
    ErrorMessage e;
    e.code = static_cast<ErrorCode>(1 + code % 11);
    e.transferId = (flags & 8) != 0 ? 0 : (flags & 16) != 0 ? transferId_ + 1 : transferId_;
    e.retryAfterMs = retryAfterMs;
    e.message = bytesOf("fuzz");
    std::vector<uint8_t> out(kErrorFixedBytes + 8);
    out.resize(encodeError(e, out.data(), out.size()));
    Corr corr = (flags & 2) != 0 ? Corr::NONE : (flags & 4) != 0 ? Corr::FOREIGN : Corr::OURS;
    deliver((flags & 1) != 0 ? rx_->errorTopic() : rx_->dataTopic(), out, corr);
  }

  void chunkFields(uint32_t index, uint32_t offset, uint16_t length, bool corrupt) {
    Chunk c;
    c.transferId = transferId_;
    c.index = index;
    c.offset = offset;
    std::vector<uint8_t> payload(length);
    for (size_t i = 0; i < payload.size(); ++i) {
      uint64_t at = static_cast<uint64_t>(offset) + i;
      payload[i] = at < image_.size() ? image_[at] : 0;
    }
    c.payload = view(payload);
    c.crc32 = crc32(0, payload.data(), payload.size()) ^ (corrupt ? 1u : 0u);
    std::vector<uint8_t> out(kChunkHeaderBytes + payload.size());
    out.resize(encodeChunk(c, out.data(), out.size()));
    deliver(rx_->dataTopic(), out, Corr::OURS);
  }

  /// Checks every message published since the last check and the receiver's state; `budget`
  /// bounds how many messages the record may have drawn.
  const char* check(size_t budget) {
    size_t fresh = pub_.sent.size() - checked_;
    if (fresh > budget) return "one record drew more messages than it may";
    for (; checked_ < pub_.sent.size(); ++checked_) {
      const char* broken = checkPublished(pub_.sent[checked_]);
      if (broken != nullptr) return broken;
    }
    if (rx_->state() == State::VERIFIED && flash_.activations == 0) {
      return "VERIFIED without switching the boot slot";
    }
    // A saved resume point for this image promises its first `offset` bytes are in flash.
    const std::optional<ResumePoint>& point = store_.point;
    if (point && std::memcmp(point->sha256, sha_, kSha256Bytes) == 0 &&
        (point->offset > image_.size() ||
         std::memcmp(flash_.mem.data(), image_.data(), point->offset) != 0)) {
      return "the resume point claims image bytes the flash does not hold";
    }
    return nullptr;
  }

 private:
  ImageKind kind() const {
    return (bits_ & setup::kGenericImage) != 0 ? ImageKind::GENERIC_FILE : ImageKind::ESP32_APP;
  }
  uint32_t chunkCount() const {
    return static_cast<uint32_t>((image_.size() + chunkSize_ - 1) / chunkSize_);
  }

  bool lastRequest(Request& out) {
    for (auto it = pub_.sent.rbegin(); it != pub_.sent.rend(); ++it) {
      if (it->topic == rx_->requestTopic()) {
        lastRequestBytes_ = it->data;
        return decodeRequest(lastRequestBytes_.data(), lastRequestBytes_.size(), out) ==
               DecodeError::NONE;
      }
    }
    return false;
  }

  /// Correlation Data of the last REQUEST: an MQTT 5 property, or in the body under 3.1.1. Only
  /// messages published since the last call are looked at, so a long run stays linear.
  const std::vector<uint8_t>& ourCorrelation() {
    for (; correlationScanned_ < pub_.sent.size(); ++correlationScanned_) {
      const fakes::Published& p = pub_.sent[correlationScanned_];
      if (p.topic != rx_->requestTopic()) continue;
      Request req;
      if (!p.correlation.empty()) {
        correlation_ = p.correlation;
      } else if (decodeRequest(p.data.data(), p.data.size(), req) == DecodeError::NONE) {
        correlation_.assign(req.correlationData.data,
                            req.correlationData.data + req.correlationData.size);
      }
    }
    return correlation_;
  }

  std::vector<uint8_t> correlation(Corr corr, bool& tooLong) {
    tooLong = false;
    switch (corr) {
      case Corr::OURS: return mqtt5() ? ourCorrelation() : std::vector<uint8_t>{};
      case Corr::NONE: return {};
      case Corr::FOREIGN: return std::vector<uint8_t>(kCorrelationBytes, 0xA5);
      case Corr::TOO_LONG:
        tooLong = true;
        return std::vector<uint8_t>(kCorrelationBytes, 0x5A);
    }
    return {};
  }

  void deliver(const std::string& topic, const std::vector<uint8_t>& payload, Corr corr) {
    bool tooLong = false;
    std::vector<uint8_t> corrBytes = correlation(corr, tooLong);
    // Exactly sized copies: a read past the end of any field is a heap overflow ASan sees.
    std::vector<uint8_t> topicBytes(topic.begin(), topic.end());
    std::vector<uint8_t> responseTopic(kAckTopic, kAckTopic + std::strlen(kAckTopic));
    std::vector<uint8_t> body(payload);
    InboundMessage m;
    m.topic = view(topicBytes);
    m.payload = view(body);
    m.correlation = view(corrBytes);
    m.correlationTooLong = tooLong;
    if (mqtt5()) m.responseTopic = view(responseTopic);
    rx_->onMessage(m);
  }

  /// Feeds `payload` to the Inbox in pieces of `fragment` bytes, as esp-mqtt hands them over;
  /// `glitch` (low nibble: which piece, bits 4-5: what) drops, repeats or restarts one piece, as
  /// a broken client library might, and bit 6 leaves the message in the inbox (the receiver task
  /// is busy writing flash) so that the next ones find the pool full.
  void deliverInFragments(const std::string& topic, const std::vector<uint8_t>& payload, Corr corr,
                          size_t fragment, uint8_t glitch) {
    bool tooLong = false;
    std::vector<uint8_t> corrBytes = correlation(corr, tooLong);
    if (tooLong) corrBytes.resize(kCorrelationBytes + 1, 0x5A);  // the assembler flags it
    FragmentHeader header;
    header.topic = view(topic);
    header.correlation = view(corrBytes);
    std::string responseTopic = kAckTopic;
    if (mqtt5()) header.responseTopic = view(responseTopic);
    size_t glitchAt = glitch & 0x0F;
    uint8_t what = (glitch >> 4) & 3;  // 0 none, 1 drop, 2 repeat, 3 restart from offset 0
    for (size_t offset = 0, piece = 0;; ++piece) {
      size_t n = payload.size() - offset < fragment ? payload.size() - offset : fragment;
      bool glitched = what != 0 && piece == glitchAt;
      if (glitched && what == 1) {
        offset += n;  // lost: the next piece arrives at an offset the assembler does not expect
        if (offset >= payload.size()) return;
        continue;
      }
      size_t at = glitched && what == 3 ? 0 : offset;
      std::vector<uint8_t> bytes(payload.begin() + static_cast<std::ptrdiff_t>(at),
                                 payload.begin() + static_cast<std::ptrdiff_t>(at + n));
      Inbox::FeedResult r = inbox_.feed(header, bytes.data(), bytes.size(), at, payload.size());
      if (glitched && what == 2) {
        r = inbox_.feed(header, bytes.data(), bytes.size(), at, payload.size());
      }
      offset += n;
      if (r != Inbox::FeedResult::PENDING || offset >= payload.size()) break;
    }
    if ((glitch & 0x40) == 0) drainInbox();
  }

 public:
  /// The receiver task's turn: hands every queued message to the receiver, giving each slot
  /// back (receiver_task.cpp does the same).
  void drainInbox() {
    const InboundMessage* message = nullptr;
    for (uint32_t slot; (slot = inbox_.receive(0, message)) != Inbox::kNone;) {
      rx_->onMessage(*message);
      inbox_.release(slot);
    }
  }

  /// After a drain at most the slot of one unfinished message is taken: the network task can
  /// always take the next message.
  bool inboxHasRoom() const { return inbox_.hasFreeSlot(); }

 private:

  std::vector<uint8_t> chunkBytes(uint32_t index, bool corrupt, uint32_t transferId) {
    Chunk c;
    c.transferId = transferId;
    c.index = index;
    c.offset = index * chunkSize_;
    std::vector<uint8_t> payload;
    if (c.offset < image_.size()) {
      size_t len = std::min<size_t>(chunkSize_, image_.size() - c.offset);
      payload.assign(image_.begin() + c.offset, image_.begin() + c.offset + len);
    } else {
      payload.assign(chunkSize_, 0x5A);  // a chunk past the end of the image
    }
    c.payload = view(payload);
    c.crc32 = crc32(0, payload.data(), payload.size()) ^ (corrupt ? 1u : 0u);
    std::vector<uint8_t> out(kChunkHeaderBytes + payload.size());
    out.resize(encodeChunk(c, out.data(), out.size()));
    return out;
  }

  void sendManifest(uint32_t transferId, uint32_t start, uint32_t chunkBytes, const char* ackTopic,
                    const char* product, const char* version, bool wrongSha, Corr corr) {
    Manifest m;
    m.transferId = transferId;
    std::memcpy(m.sha256, sha_, kSha256Bytes);
    if (wrongSha) m.sha256[0] ^= 0xFF;
    m.size = static_cast<uint32_t>(image_.size());
    m.chunkSize = chunkBytes;
    m.chunkCount = static_cast<uint32_t>((image_.size() + chunkBytes - 1) / chunkBytes);
    m.startOffset = start;
    m.window = window_;
    m.kind = kind();
    m.name = bytesOf("fuzz.bin");
    m.product = bytesOf(product);
    m.version = bytesOf(version);
    m.ackTopic = bytesOf(ackTopic);
    if ((bits_ & setup::kSigned) != 0) m.signature = Bytes{kImageSignature, kSignatureBytes};
    std::vector<uint8_t> out(kManifestFixedBytes + 128);
    out.resize(encodeManifest(m, out.data(), out.size()));
    deliver(rx_->dataTopic(), out, corr);
    // The sender's model follows what it just offered, accepted or not.
    transferId_ = transferId;
    if (chunkBytes <= kFuzzMaxChunkBytes) {
      chunkSize_ = chunkBytes;
      next_ = start / chunkBytes;
    }
  }

  const char* checkPublished(const fakes::Published& p) {
    const uint8_t* d = p.data.data();
    size_t n = p.data.size();
    if (p.topic == rx_->requestTopic()) {
      Request req;
      if (decodeRequest(d, n, req) != DecodeError::NONE) return "the receiver sent a bad REQUEST";
      if (!equals(req.deviceId, kDeviceId)) return "a REQUEST names another device";
      return nullptr;
    }
    if (!isAckTopicOf(bytesOf(p.topic.c_str()), kPrefix, kDeviceId)) {
      return "the receiver published outside its namespace";
    }
    MessageType type{};
    if (peekTypeOn(TopicKind::ACK, d, n, type) != DecodeError::NONE) {
      return "the receiver sent a message the ack topic does not carry";
    }
    if (type == MessageType::ACK) {
      Ack ack;
      if (decodeAck(d, n, ack) != DecodeError::NONE) return "the receiver sent a bad ACK";
      if (ack.nextIndex > kMaxFuzzChunks) return "an ACK names a chunk beyond any image";
      return nullptr;
    }
    Status st;
    if (decodeStatus(d, n, st) != DecodeError::NONE) return "the receiver sent a bad STATUS";
    if (st.status == StatusCode::VERIFIED) {
      const Outcome& o = rx_->outcome();
      if (o.size == 0 || o.size > flash_.mem.size() || flash_.activations == 0) {
        return "VERIFIED without a written and activated image";
      }
      uint8_t digest[kSha256Bytes];
      Sha256 h;
      h.begin();
      h.update(flash_.mem.data(), o.size);
      h.finish(digest);
      if (std::memcmp(digest, st.sha256, kSha256Bytes) != 0) {
        return "VERIFIED for flash bytes whose SHA-256 differs";
      }
    }
    return nullptr;
  }

  InboxSlots<kInboxSlots, kAssemblerBytes> slots_;
  RingQueue freeQueue_{kInboxSlots};
  RingQueue readyQueue_{kInboxSlots + 1};
  /// slotWaitMs 0: a full pool drops at once (no other task could free a slot meanwhile).
  Inbox inbox_{slots_.pointers(), kInboxSlots, freeQueue_, readyQueue_, 0};
  fakes::FakeFlash flash_;
  fakes::FakePublisher pub_;
  fakes::MemStore store_;
  fakes::FakeClock clock_;
  ReceiverConfig cfg_;
  std::unique_ptr<Receiver> rx_;
  uint8_t bits_;
  uint16_t window_;
  std::vector<uint8_t> image_;
  uint8_t sha_[kSha256Bytes] = {};
  std::vector<uint8_t> lastRequestBytes_;
  std::vector<uint8_t> correlation_;
  size_t correlationScanned_ = 0;
  // The sender's model of the transfer.
  uint32_t chunkSize_;
  uint32_t transferId_ = kFirstTransferId;
  uint32_t next_ = 0;
  size_t checked_ = 0;
};

}  // namespace

const char* fuzzReceiver(const uint8_t* data, size_t size, ReceiverRunSummary* summary) {
  FuzzInput in(data, size);
  uint8_t bits = in.u8();
  uint32_t imageBytes = 1u + in.u16() % kFuzzFlashBytes;
  uint8_t chunkAndFaults = in.u8();
  uint32_t chunkBytes = kMinChunkBytes << ((chunkAndFaults & 3) % 3);
  uint8_t faults = (chunkAndFaults >> 2) & 3;
  uint16_t window = static_cast<uint16_t>(1 + in.u8() % kMaxWindow);
  World w(bits, imageBytes, chunkBytes, faults, window);
  w.begin();
  if (const char* broken = w.check(kMaxRepliesPerRecord)) return broken;
  uint32_t records = 0;
  while (!in.empty()) {
    ++records;
    uint8_t b = in.u8();
    uint8_t param = static_cast<uint8_t>(b >> 3);
    size_t budget = kMaxRepliesPerRecord;
    switch (static_cast<Op>(b & 7)) {
      case Op::RAW: w.raw(in, param); break;
      case Op::CHUNK: w.chunk(in.u8(), param); break;
      case Op::RUN: {
        uint32_t count = 1u + in.u8() % 64u;
        budget = 2 * count + kMaxRepliesPerRecord;
        w.run(count);
        break;
      }
      case Op::TICK: {
        uint32_t ms = static_cast<uint32_t>(in.u16()) << (param % 16);
        w.clock().now += ms;
        w.drainInbox();
        w.rx().tick(w.clock().now);
        if (!w.inboxHasRoom()) return "the inbox holds every slot after the receiver drained it";
        break;
      }
      case Op::START:
        if ((param & 1) != 0) w.reboot();
        w.rx().start();
        break;
      case Op::MANIFEST: {
        uint8_t id = in.u8();
        uint8_t startChunk = in.u8();
        w.manifest(param, id, startChunk, in.u8());
        break;
      }
      case Op::ERROR: {
        uint8_t code = in.u8();
        uint32_t retry = static_cast<uint32_t>(in.u16()) << (param % 16);
        w.error(code, retry, in.u8());
        break;
      }
      case Op::CHUNK_FIELDS: {
        uint32_t index = in.u32();
        uint32_t offset = in.u32();
        w.chunkFields(index, offset, in.u16() % (kFuzzMaxChunkBytes + 2), (param & 1) != 0);
        break;
      }
    }
    if (const char* broken = w.check(budget)) return broken;
  }
  if (summary != nullptr) {
    summary->state = w.rx().state();
    summary->chunksWritten = w.rx().stats().chunksWritten;
    summary->records = records;
  }
  return nullptr;
}

}  // namespace ota_fuzz
