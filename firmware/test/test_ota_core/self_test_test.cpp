// self_test_test.cpp: the boot self-test (SUBACK checked, one REQUEST -> answer round trip,
// rollback failure handled) and the boot record saved before the boot slot switches.
#include <gtest/gtest.h>

#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "fakes.h"
#include "ota_core/inbox.h"
#include "ota_core/self_test.h"

using namespace ota_core;

namespace {

class FakeBoot : public BootControl {
 public:
  bool pendingVerify() override { return pending; }
  const char* runningSlot() override { return running.c_str(); }
  bool markValid() override {
    ++validMarks;
    pending = false;
    events.push_back("valid");
    return true;
  }
  bool rollback() override {
    ++rollbacks;
    events.push_back("rollback");
    return rollbackWorks;
  }
  bool pending = true;
  bool rollbackWorks = true;
  std::string running = "ota_1";
  int validMarks = 0, rollbacks = 0;
  std::vector<std::string> events;
};

class MemBootStore : public BootStore {
 public:
  bool loadBootRecord(BootRecord& out) override {
    if (!record) return false;
    out = *record;
    return true;
  }
  bool saveBootRecord(const BootRecord& r) override {
    if (failSave) return false;
    record = r;
    if (log != nullptr) log->push_back("record");
    return true;
  }
  void clearBootRecord() override { record.reset(); }
  std::optional<BootRecord> record;
  bool failSave = false;
  std::vector<std::string>* log = nullptr;
};

const char* const kData = "ota/dev/dev-1/data";
const char* const kError = "ota/dev/dev-1/error";
const char* const kStatusTopic = "ota/dev/dev-1/status";
const std::vector<uint8_t> kCorr = {1, 2, 3, 4, 5, 6, 7, 8};

struct Fixture {
  FakeBoot boot;
  MemBootStore store;
  fakes::FakePublisher pub;
  SelfTest test{boot, store, pub, kStatusTopic, "2.0.0", 60000};

  void deliver(const std::vector<uint8_t>& payload, const std::vector<uint8_t>& corr,
               const char* topic = kData) {
    InboundMessage m;
    m.topic = bytesOf(topic);
    m.payload = Bytes{payload.data(), payload.size()};
    m.correlation = Bytes{corr.data(), corr.size()};
    test.onMessage(m, kData, kError, Bytes{kCorr.data(), kCorr.size()}, true);
  }
  static std::vector<uint8_t> error(ErrorCode code) {
    ErrorMessage e;
    e.code = code;
    e.message = bytesOf("x");
    std::vector<uint8_t> out(64);
    out.resize(encodeError(e, out.data(), out.size()));
    return out;
  }
  static std::vector<uint8_t> manifest() {
    fakes::Harness h;
    return h.manifestBytes(0);
  }
  std::vector<Status> statuses() {
    std::vector<Status> out;
    for (auto& p : pub.sent) {
      Status s;
      if (p.topic == kStatusTopic && decodeStatus(p.data.data(), p.data.size(), s) == DecodeError::NONE) {
        out.push_back(s);
      }
    }
    return out;
  }
  void saveRecord(const char* slot) {
    BootRecord r;
    std::memset(r.sha256, 0xAB, sizeof r.sha256);
    std::strcpy(r.version, "2.0.0");
    std::strcpy(r.slot, slot);
    store.record = r;
  }
};

}  // namespace

TEST(SelfTest, APendingImageIsMarkedValidOnlyAfterTheSenderAnswersItsRequest) {
  Fixture f;
  f.saveRecord("ota_1");
  f.test.begin(0);
  EXPECT_EQ(f.test.phase(), SelfTestPhase::WAITING_LINK);
  f.test.onLinkEvents(kLinkReady);  // connected and subscribed: not enough
  EXPECT_EQ(f.boot.validMarks, 0);
  EXPECT_EQ(f.test.phase(), SelfTestPhase::WAITING_ANSWER);
  f.deliver(Fixture::error(ErrorCode::UP_TO_DATE), kCorr);
  EXPECT_EQ(f.boot.validMarks, 1);
  EXPECT_EQ(f.test.phase(), SelfTestPhase::PASSED);
  auto st = f.statuses();
  ASSERT_EQ(st.size(), 1u);
  EXPECT_EQ(st[0].status, StatusCode::BOOTED);
  EXPECT_EQ(st[0].sha256[0], 0xAB);  // the record's SHA-256, not zeros
  EXPECT_FALSE(f.store.record.has_value());
}

TEST(SelfTest, AManifestAnsweringTheRequestPassesBeforeTheReceiverOpensTheSlot) {
  Fixture f;
  f.test.begin(0);
  f.test.onLinkEvents(kLinkReady);
  f.deliver(Fixture::manifest(), kCorr);
  EXPECT_EQ(f.test.phase(), SelfTestPhase::PASSED);
  EXPECT_EQ(f.boot.validMarks, 1);
}

TEST(SelfTest, AnswersToAnotherRequestOrOtherErrorsDoNotPass) {
  Fixture f;
  f.test.begin(0);
  f.test.onLinkEvents(kLinkReady);
  f.deliver(Fixture::error(ErrorCode::UP_TO_DATE), {9, 9, 9, 9, 9, 9, 9, 9});
  f.deliver(Fixture::error(ErrorCode::UNKNOWN_IMAGE), kCorr);  // e.g. a wrong product name
  f.deliver(Fixture::error(ErrorCode::BUSY), kCorr);
  EXPECT_EQ(f.test.phase(), SelfTestPhase::WAITING_ANSWER);
  EXPECT_EQ(f.boot.validMarks, 0);
  // The error topic carries answers without correlation (no usable Response Topic).
  f.deliver(Fixture::error(ErrorCode::UP_TO_DATE), {}, kError);
  EXPECT_EQ(f.test.phase(), SelfTestPhase::PASSED);
}

TEST(SelfTest, ARefusedSubscriptionRollsBackAtOnce) {
  Fixture f;
  f.test.begin(0);
  f.test.onLinkEvents(kLinkSubscribeRefused);
  EXPECT_EQ(f.boot.rollbacks, 1);
  EXPECT_EQ(f.boot.validMarks, 0);
  EXPECT_EQ(f.test.phase(), SelfTestPhase::ROLLING_BACK);
  EXPECT_STREQ(f.test.failure(), "the broker refused a subscription");
}

TEST(SelfTest, NoAnswerWithinTheSelfTestTimeRollsBack) {
  Fixture f;
  f.test.begin(1000);
  f.test.onLinkEvents(kLinkReady);
  f.test.tick(60999);
  EXPECT_EQ(f.boot.rollbacks, 0);
  f.test.tick(61000);
  EXPECT_EQ(f.boot.rollbacks, 1);
  EXPECT_EQ(f.boot.validMarks, 0);
}

TEST(SelfTest, AFailedRollbackIsReportedAndTheImageKeptUpdatable) {
  Fixture f;
  f.boot.rollbackWorks = false;  // ESP_ERR_OTA_ROLLBACK_FAILED: no other valid image
  f.test.begin(0);
  f.test.tick(60000);
  EXPECT_EQ(f.boot.events, (std::vector<std::string>{"rollback", "valid"}));
  EXPECT_EQ(f.test.phase(), SelfTestPhase::KEPT_AFTER_FAILED_ROLLBACK);
  auto st = f.statuses();
  ASSERT_EQ(st.size(), 1u);
  EXPECT_EQ(st[0].status, StatusCode::BOOTED);
  std::string detail(reinterpret_cast<const char*>(st[0].detail.data), st[0].detail.size);
  EXPECT_NE(detail.find("no image to roll back to"), std::string::npos) << detail;
}

TEST(SelfTest, AfterARollbackTheOldImageReportsRolledBackWithTheRecordedSha) {
  Fixture f;
  f.boot.pending = false;
  f.boot.running = "ota_0";
  f.saveRecord("ota_1");
  f.test.begin(0);
  EXPECT_EQ(f.test.phase(), SelfTestPhase::REPORT_DUE);
  EXPECT_TRUE(f.statuses().empty());  // nothing before the link is up
  f.test.onLinkEvents(kLinkReady);
  auto st = f.statuses();
  ASSERT_EQ(st.size(), 1u);
  EXPECT_EQ(st[0].status, StatusCode::ROLLED_BACK);
  EXPECT_EQ(st[0].sha256[31], 0xAB);
  EXPECT_FALSE(f.store.record.has_value());
}

TEST(SelfTest, AnOrdinaryBootReportsNothing) {
  Fixture f;
  f.boot.pending = false;
  f.test.begin(0);
  f.test.onLinkEvents(kLinkReady);
  f.test.tick(1000000);
  EXPECT_EQ(f.test.phase(), SelfTestPhase::IDLE);
  EXPECT_TRUE(f.pub.sent.empty());
  EXPECT_EQ(f.boot.rollbacks, 0);
}

namespace {
/// A sink whose activate() logs, to see what happened first.
class LoggingSink : public fakes::FakeFlash {
 public:
  explicit LoggingSink(std::vector<std::string>& log) : FakeFlash(1 << 20), log_(log) {}
  bool activate() override {
    log_.push_back("switch");
    return FakeFlash::activate();
  }

 private:
  std::vector<std::string>& log_;
};
}  // namespace

TEST(RecordingSink, SavesTheBootRecordBeforeTheBootSlotSwitches) {
  std::vector<std::string> log;
  LoggingSink inner(log);
  MemBootStore store;
  store.log = &log;
  RecordingSink sink(inner, store, "ota_1");
  fakes::Harness h(10000, 1024, 4);
  Receiver rx(h.cfg, sink, h.pub, h.store, h.clock);
  h.rx.reset();
  sink.watch(rx);
  rx.start();
  InboundMessage m;
  auto manifest = h.manifestBytes(0);
  std::string topic = kData;
  auto corr = h.lastCorrelation();
  m.topic = bytesOf(topic.c_str());
  m.correlation = Bytes{corr.data(), corr.size()};
  m.payload = Bytes{manifest.data(), manifest.size()};
  rx.onMessage(m);
  for (uint32_t i = 0; i < h.chunkCount(); ++i) {
    auto c = h.chunkBytes(i);
    m.payload = Bytes{c.data(), c.size()};
    rx.onMessage(m);
  }
  ASSERT_EQ(rx.state(), State::VERIFIED);
  EXPECT_EQ(log, (std::vector<std::string>{"record", "switch"}));
  ASSERT_TRUE(store.record.has_value());
  EXPECT_EQ(0, std::memcmp(store.record->sha256, h.sha, 32));
  EXPECT_STREQ(store.record->version, "1.1.0");
  EXPECT_STREQ(store.record->slot, "ota_1");
}

TEST(RecordingSink, RefusesTheSwitchWhenTheRecordCannotBeSaved) {
  std::vector<std::string> log;
  LoggingSink inner(log);
  MemBootStore store;
  store.failSave = true;
  RecordingSink sink(inner, store, "ota_1");
  ASSERT_EQ(sink.begin(10, ImageKind::GENERIC_FILE), SinkResult::OK);
  uint8_t bytes[10] = {};
  ASSERT_EQ(sink.write(bytes, 10), SinkResult::OK);
  ASSERT_EQ(sink.finish(), SinkResult::OK);
  EXPECT_FALSE(sink.activate());
  EXPECT_TRUE(log.empty());
  EXPECT_EQ(inner.activations, 0u);
}
