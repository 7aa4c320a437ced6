// receiver_test.cpp: the protocol §8 receiver against fakes: happy path and ACK coalescing,
// every NACK reason, flash faults, hash and signature failures, resume with rehash, timeouts,
// BUSY, stray messages, MQTT 3.1.1, and whole transfers delivered in fragments of every size.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "fakes.h"
#include "ota_core/assembler.h"
#include "test_keys.h"

using namespace ota_core;
using fakes::Harness;

namespace {

TEST(Receiver, DownloadsVerifiesAndActivatesAnImageSentInOrder) {
  Harness h;
  Receiver& rx = h.make();
  rx.start();
  ASSERT_EQ(rx.state(), State::REQUESTED);
  ASSERT_EQ(h.requests().size(), 1u);
  EXPECT_FALSE(h.requests()[0].hasResume);
  EXPECT_EQ(h.pub.sent[0].responseTopic, "ota/dev/dev-1/data");  // MQTT 5 property
  EXPECT_EQ(h.lastCorrelation().size(), kCorrelationBytes);
  h.sendManifest();
  ASSERT_EQ(rx.state(), State::RECEIVING);
  h.sendAllFrom(0);
  EXPECT_EQ(rx.state(), State::VERIFIED);
  EXPECT_TRUE(h.flashHoldsImage());
  EXPECT_EQ(h.flash.activations, 1u);
  ASSERT_EQ(h.statuses().size(), 1u);
  EXPECT_EQ(h.statuses()[0], StatusCode::VERIFIED);
  EXPECT_FALSE(h.store.point.has_value());  // nothing left to resume
}

TEST(Receiver, AcknowledgesAtLeastEveryHalfWindowAndTheLastChunk) {
  Harness h(20 * 1024 + 5, 1024, 8);  // 21 chunks, ceil(8/2) = 4
  Receiver& rx = h.make();
  rx.start();
  h.sendManifest();
  h.sendAllFrom(0);
  ASSERT_EQ(rx.state(), State::VERIFIED);
  std::vector<uint32_t> next;
  for (const Ack& a : h.acks()) next.push_back(a.nextIndex);
  EXPECT_EQ(next, (std::vector<uint32_t>{4, 8, 12, 16, 20, 21}));
}

TEST(Receiver, FlushesPendingAcksAfterAShortQuietPeriod) {
  Harness h(8 * 1024, 1024, 8);
  Receiver& rx = h.make();
  rx.start();
  h.sendManifest();
  h.sendChunk(0);
  EXPECT_TRUE(h.acks().empty());
  h.clock.now += kAckFlushDelayMs;
  rx.tick(h.clock.now);
  ASSERT_EQ(h.acks().size(), 1u);
  EXPECT_EQ(h.acks()[0].nextIndex, 1u);
}

TEST(Receiver, NacksACorruptedChunkAndAcceptsItsResend) {
  Harness h;
  Receiver& rx = h.make();
  rx.start();
  h.sendManifest();
  h.sendChunk(0);
  h.sendChunk(1, /*corrupt=*/true);
  ASSERT_FALSE(h.acks().empty());
  EXPECT_EQ(h.acks().back().nack, NackReason::CRC_MISMATCH);
  EXPECT_EQ(h.acks().back().nextIndex, 1u);
  EXPECT_EQ(h.flash.writeCalls, 1u);  // CRC is checked before the flash write
  h.sendAllFrom(1);
  EXPECT_EQ(rx.state(), State::VERIFIED);
  EXPECT_TRUE(h.flashHoldsImage());
}

TEST(Receiver, ReAcksDuplicatesAndLateChunksWithOneCoalescedAck) {
  Harness h;
  Receiver& rx = h.make();
  rx.start();
  h.sendManifest();
  h.sendChunk(0);
  h.sendChunk(1);
  h.sendChunk(2);
  size_t before = h.acks().size();
  h.sendChunk(1);  // duplicate
  h.sendChunk(0);  // late
  EXPECT_EQ(h.acks().size(), before);  // held back, at most ACK_FLUSH_MS (§8)
  h.clock.now += kAckFlushDelayMs;
  rx.tick(h.clock.now);
  ASSERT_EQ(h.acks().size(), before + 1);
  EXPECT_EQ(h.acks().back().nextIndex, 3u);
  EXPECT_EQ(h.acks().back().nack, NackReason::NONE);
  EXPECT_EQ(rx.stats().duplicates, 2u);
  h.sendAllFrom(3);
  EXPECT_EQ(rx.state(), State::VERIFIED);
}

TEST(Receiver, NacksAGapOncePerNextIndex) {
  Harness h;
  Receiver& rx = h.make();
  rx.start();
  h.sendManifest();
  h.sendChunk(0);
  h.sendChunk(2);
  h.sendChunk(3);
  h.sendChunk(4);
  int gaps = 0;
  for (const Ack& a : h.acks()) gaps += a.nack == NackReason::GAP ? 1 : 0;
  EXPECT_EQ(gaps, 1);
  EXPECT_EQ(h.acks().back().nextIndex, 1u);
  h.sendAllFrom(1);  // go-back-N resend
  EXPECT_EQ(rx.state(), State::VERIFIED);
  EXPECT_TRUE(h.flashHoldsImage());
}

TEST(Receiver, NacksAChunkThatDoesNotFitTheManifest) {
  Harness h;
  Receiver& rx = h.make();
  rx.start();
  h.sendManifest();
  std::vector<uint8_t> c = h.chunkBytes(0);
  c[12] = 5;  // offset field no longer index * chunkSize
  h.deliver(c, h.lastCorrelation());
  ASSERT_EQ(h.acks().size(), 1u);
  EXPECT_EQ(h.acks()[0].nack, NackReason::BAD_CHUNK);
  std::vector<uint8_t> trunc = h.chunkBytes(0);
  trunc.pop_back();  // LENGTH_MISMATCH, but the transfer id is readable
  h.deliver(trunc, h.lastCorrelation());
  EXPECT_EQ(h.acks().back().nack, NackReason::BAD_CHUNK);
  EXPECT_EQ(rx.stats().badChunks, 2u);
}

TEST(Receiver, RetriesAFailedFlashWriteAfterANack) {
  Harness h;
  h.flash.failAt = {3};
  Receiver& rx = h.make();
  rx.start();
  h.sendManifest();
  h.sendChunk(0);
  h.sendChunk(1);
  h.sendChunk(2);  // write call 3 fails
  EXPECT_EQ(h.acks().back().nack, NackReason::FLASH_WRITE_FAILED);
  EXPECT_EQ(h.acks().back().nextIndex, 2u);
  h.sendAllFrom(2);
  EXPECT_EQ(rx.state(), State::VERIFIED);
  EXPECT_TRUE(h.flashHoldsImage());
}

TEST(Receiver, AbortsWithFlashErrorAfterThreeFailedWritesAndNeverActivates) {
  Harness h;
  h.flash.failAt = {2, 3, 4};
  Receiver& rx = h.make();
  rx.start();
  h.sendManifest();
  h.sendChunk(0);
  h.sendChunk(1);
  h.sendChunk(1);
  EXPECT_EQ(rx.state(), State::RECEIVING);
  h.sendChunk(1);
  EXPECT_EQ(rx.state(), State::FAILED);
  ASSERT_EQ(h.statuses().size(), 1u);
  EXPECT_EQ(h.statuses()[0], StatusCode::FLASH_ERROR);
  EXPECT_EQ(h.flash.activations, 0u);
  EXPECT_GE(h.flash.aborts, 1u);
  h.sendAllFrom(1);  // stray chunks after the failure change nothing
  EXPECT_EQ(h.flash.activations, 0u);
}

TEST(Receiver, ReportsHashMismatchAndNeverActivates) {
  Harness h;
  h.sha[5] ^= 0xFF;  // the manifest announces another digest than the bytes sent
  Receiver& rx = h.make();
  rx.start();
  h.sendManifest();
  h.sendAllFrom(0);
  EXPECT_EQ(rx.state(), State::FAILED);
  EXPECT_EQ(h.statuses(), std::vector<StatusCode>{StatusCode::HASH_MISMATCH});
  EXPECT_EQ(h.flash.activations, 0u);
  EXPECT_FALSE(h.store.point.has_value());
}

TEST(Receiver, RefusesAnEsp32ImageWithoutTheMagicByte) {
  Harness h;
  h.image[0] = 0x00;
  Receiver& rx = h.make();
  rx.start();
  h.sendManifest();
  h.sendChunk(0);
  EXPECT_EQ(rx.state(), State::FAILED);
  EXPECT_EQ(h.statuses(), std::vector<StatusCode>{StatusCode::IMAGE_INVALID});
}

TEST(Receiver, RefusesManifestsItCannotTake) {
  struct Case {
    const char* what;
    std::function<void(Manifest&)> tweak;
    StatusCode expected;
  };
  std::vector<Case> cases = {
      {"other product", [](Manifest& m) { m.product = bytesOf("other"); }, StatusCode::ABORTED},
      {"chunk too large for the buffer", [](Manifest& m) { m.chunkSize = 8192; m.chunkCount = 2; },
       StatusCode::ABORTED},
      {"larger than the slot", [](Manifest& m) { m.size = 2 << 20; m.chunkCount = 2048; },
       StatusCode::ABORTED},
  };
  for (const Case& c : cases) {
    Harness h;
    Receiver& rx = h.make();
    rx.start();
    h.sendManifest(0, c.tweak);
    EXPECT_EQ(rx.state(), State::FAILED) << c.what;
    EXPECT_EQ(h.statuses(), std::vector<StatusCode>{c.expected}) << c.what;
    EXPECT_EQ(h.flash.begins, 0u) << c.what;
  }
}

TEST(Receiver, ResumesFromTheStoredOffsetAndRehashesTheFlash) {
  Harness h(10000, 1024, 4);
  // A previous boot wrote 5 chunks (5120 bytes) and saved the point, then lost power.
  std::copy(h.image.begin(), h.image.begin() + 5120, h.flash.mem.begin());
  ResumePoint p;
  std::memcpy(p.sha256, h.sha, 32);
  p.offset = 5120;
  p.size = 10000;
  std::strcpy(p.product, "blink");
  std::strcpy(p.version, "1.1.0");
  h.store.point = p;
  Receiver& rx = h.make();
  rx.start();
  ASSERT_EQ(h.requests().size(), 1u);
  Request req = h.requests()[0];
  ASSERT_TRUE(req.hasResume);
  EXPECT_EQ(req.resumeOffset, 4096u);  // rounded down to an erase sector
  EXPECT_EQ(0, std::memcmp(req.resumeSha256, h.sha, 32));
  h.sendManifest(4096);
  ASSERT_EQ(rx.state(), State::RECEIVING);
  EXPECT_EQ(h.flash.resumes, 1u);
  EXPECT_EQ(h.flash.begins, 0u);
  EXPECT_EQ(rx.stats().rehashedBytes, 4096u);
  EXPECT_EQ(rx.stats().resumedFrom, 4096u);
  h.sendAllFrom(4);
  EXPECT_EQ(rx.state(), State::VERIFIED);
  EXPECT_EQ(rx.stats().bytesWritten, 10000u - 4096u);
  EXPECT_TRUE(h.flashHoldsImage());
}

TEST(Receiver, ResumeOverCorruptedFlashEndsInHashMismatch) {
  Harness h(10000, 1024, 4);
  std::copy(h.image.begin(), h.image.begin() + 4096, h.flash.mem.begin());
  h.flash.mem[100] ^= 1;  // a bit flipped in the part written before the reboot
  ResumePoint p;
  std::memcpy(p.sha256, h.sha, 32);
  p.offset = 4096;
  p.size = 10000;
  std::strcpy(p.product, "blink");
  h.store.point = p;
  Receiver& rx = h.make();
  rx.start();
  h.sendManifest(4096);
  h.sendAllFrom(4);
  EXPECT_EQ(rx.state(), State::FAILED);
  EXPECT_EQ(h.statuses(), std::vector<StatusCode>{StatusCode::HASH_MISMATCH});
  EXPECT_EQ(h.flash.activations, 0u);
}

TEST(Receiver, RefusesAStartOffsetBeyondWhatItHolds) {
  Harness h;
  Receiver& rx = h.make();
  rx.start();
  h.sendManifest(4096);
  EXPECT_EQ(rx.state(), State::FAILED);
  EXPECT_EQ(h.statuses(), std::vector<StatusCode>{StatusCode::ABORTED});
}

TEST(Receiver, ReRequestsWithItsExactPositionAfterTheIdleTimeoutAndContinues) {
  Harness h;
  Receiver& rx = h.make();
  rx.start();
  h.sendManifest();
  h.sendChunk(0);
  h.sendChunk(1);
  h.clock.now += kDeviceIdleTimeoutMs;
  rx.tick(h.clock.now);
  ASSERT_EQ(rx.state(), State::REQUESTED);
  ASSERT_EQ(h.requests().size(), 2u);
  EXPECT_TRUE(h.requests()[1].hasResume);
  EXPECT_EQ(h.requests()[1].resumeOffset, 2048u);
  h.sendChunk(2);  // a late chunk of the old transfer while REQUESTED: ignored
  EXPECT_EQ(h.flash.writeCalls, 2u);
  h.transferId = 78;
  h.sendManifest(2048);
  ASSERT_EQ(rx.state(), State::RECEIVING);
  EXPECT_EQ(rx.stats().rehashedBytes, 0u);  // same boot: the running hash continues
  std::vector<uint8_t> old = h.chunkBytes(2, false, 77);
  h.deliver(old, h.lastCorrelation());  // old transfer id: ignored
  EXPECT_EQ(h.flash.writeCalls, 2u);
  h.sendAllFrom(2);
  EXPECT_EQ(rx.state(), State::VERIFIED);
  EXPECT_TRUE(h.flashHoldsImage());
}

TEST(Receiver, GivesUpAndSaysNoSenderAnsweredAfterMaxUnansweredRequests) {
  Harness h;
  Receiver& rx = h.make();
  rx.start();
  for (uint32_t i = 0; i < kMaxUnansweredRequests; ++i) {
    h.clock.now += kDeviceIdleTimeoutMs;
    rx.tick(h.clock.now);
  }
  EXPECT_EQ(rx.state(), State::FAILED);
  EXPECT_TRUE(rx.outcome().noSender);
  EXPECT_STREQ(rx.outcome().detail, "no sender answered 3 requests on ota/dev/dev-1/req");
  EXPECT_EQ(h.requests().size(), kMaxUnansweredRequests);
}

TEST(Receiver, WaitsRetryAfterWhenBusyThenAsksAgain) {
  Harness h;
  Receiver& rx = h.make();
  rx.start();
  h.sendError(ErrorCode::BUSY, 1500);
  ASSERT_EQ(rx.state(), State::BACKING_OFF);
  h.clock.now += 1499;
  rx.tick(h.clock.now);
  EXPECT_EQ(h.requests().size(), 1u);
  h.clock.now += 1;
  rx.tick(h.clock.now);
  EXPECT_EQ(rx.state(), State::REQUESTED);
  EXPECT_EQ(h.requests().size(), 2u);
  h.sendManifest();
  h.sendAllFrom(0);
  EXPECT_EQ(rx.state(), State::VERIFIED);
}

TEST(Receiver, StopsOnAnErrorAnsweringItsRequest) {
  Harness h;
  Receiver& rx = h.make();
  rx.start();
  h.sendError(ErrorCode::UNKNOWN_IMAGE, 0);
  EXPECT_EQ(rx.state(), State::FAILED);
  EXPECT_TRUE(rx.outcome().senderError);
  EXPECT_EQ(rx.outcome().error, ErrorCode::UNKNOWN_IMAGE);
}

TEST(Receiver, IgnoresMessagesWithAnotherCorrelationOrTransfer) {
  Harness h;
  Receiver& rx = h.make();
  rx.start();
  std::vector<uint8_t> foreign = {1, 2, 3, 4, 5, 6, 7, 8};
  h.deliver(h.manifestBytes(0), foreign);
  EXPECT_EQ(rx.state(), State::REQUESTED);
  h.deliver(h.manifestBytes(0), {});  // MQTT 5 without correlation: not ours either
  EXPECT_EQ(rx.state(), State::REQUESTED);
  h.sendManifest();
  ASSERT_EQ(rx.state(), State::RECEIVING);
  h.deliver(h.chunkBytes(0), foreign);
  h.deliver(h.chunkBytes(0, false, 999), h.lastCorrelation());
  h.deliver(h.chunkBytes(0), h.lastCorrelation(), "ota/dev/other/data");
  EXPECT_EQ(h.flash.writeCalls, 0u);
  EXPECT_EQ(rx.stats().ignored, 5u);
}

TEST(Receiver, SpeaksMqtt311WithTopicAndCorrelationInTheRequestBody) {
  Harness h;
  h.cfg.mqtt5 = false;
  Receiver& rx = h.make();
  rx.start();
  ASSERT_EQ(h.requests().size(), 1u);
  Request r = h.requests()[0];
  EXPECT_TRUE(equals(r.responseTopic, "ota/dev/dev-1/data"));
  EXPECT_EQ(r.correlationData.size, kCorrelationBytes);
  EXPECT_EQ(h.pub.sent[0].responseTopic, "");
  h.deliver(h.manifestBytes(0), {});  // 3.1.1: no properties at all
  h.sendAllFrom(0);
  EXPECT_EQ(rx.state(), State::VERIFIED);
}

class SignedReceiver : public ::testing::Test {
 protected:
  TestKey key;
  SignatureVerifier verifier;
  void SetUp() override {
    std::string pem = key.publicPem();
    ASSERT_TRUE(verifier.loadPublicKey(reinterpret_cast<const uint8_t*>(pem.data()), pem.size()));
  }
};

TEST_F(SignedReceiver, AcceptsAValidSignature) {
  Harness h;
  h.cfg.verifier = &verifier;
  h.signature.resize(64);
  key.sign(h.sha, h.signature.data());
  Receiver& rx = h.make();
  rx.start();
  h.sendManifest();
  h.sendAllFrom(0);
  EXPECT_EQ(rx.state(), State::VERIFIED);
  EXPECT_EQ(h.flash.activations, 1u);
}

TEST_F(SignedReceiver, RefusesABadSignatureBeforeWritingAnything) {
  Harness h;
  h.cfg.verifier = &verifier;
  h.signature.resize(64);
  key.sign(h.sha, h.signature.data());
  h.signature[3] ^= 0x40;
  Receiver& rx = h.make();
  rx.start();
  h.sendManifest();
  EXPECT_EQ(rx.state(), State::FAILED);
  EXPECT_EQ(h.statuses(), std::vector<StatusCode>{StatusCode::SIGNATURE_INVALID});
  EXPECT_EQ(h.flash.begins, 0u);
  h.sendAllFrom(0);
  EXPECT_EQ(h.flash.activations, 0u);
}

TEST_F(SignedReceiver, RefusesAnUnsignedImageWhenAKeyIsConfigured) {
  Harness h;
  h.cfg.verifier = &verifier;
  Receiver& rx = h.make();
  rx.start();
  h.sendManifest();
  EXPECT_EQ(h.statuses(), std::vector<StatusCode>{StatusCode::SIGNATURE_INVALID});
  EXPECT_EQ(rx.state(), State::FAILED);
}

TEST_F(SignedReceiver, RefusesAValidSignatureOverAnotherDigest) {
  Harness h;
  h.cfg.verifier = &verifier;
  uint8_t other[32] = {1};
  h.signature.resize(64);
  key.sign(other, h.signature.data());
  Receiver& rx = h.make();
  rx.start();
  h.sendManifest();
  EXPECT_EQ(h.statuses(), std::vector<StatusCode>{StatusCode::SIGNATURE_INVALID});
}

TEST(Receiver, AcceptsUnsignedImagesWhenNoKeyIsConfigured) {
  Harness h;
  SignatureVerifier noKey;
  h.cfg.verifier = &noKey;
  Receiver& rx = h.make();
  rx.start();
  h.sendManifest();
  h.sendAllFrom(0);
  EXPECT_EQ(rx.state(), State::VERIFIED);
}

TEST(Receiver, RefusesEverythingWhenSignaturesAreRequiredButNoKeyLoaded) {
  Harness h;
  SignatureVerifier broken;  // e.g. the embedded PEM failed to parse
  h.cfg.verifier = &broken;
  h.cfg.requireSignature = true;
  h.signature.assign(64, 0x11);
  Receiver& rx = h.make();
  rx.start();
  h.sendManifest();
  EXPECT_EQ(h.statuses(), std::vector<StatusCode>{StatusCode::SIGNATURE_INVALID});
  EXPECT_EQ(rx.state(), State::FAILED);
}

TEST(Receiver, CompletesTransfersDeliveredInFragmentsOfEverySize) {
  // A 3000-byte image in 256-byte chunks (280-byte messages), delivered through the reassembler
  // in fragments of every size from 1 to the whole message.
  const size_t kMessage = kChunkHeaderBytes + 256;
  for (size_t frag = 1; frag <= kMessage; ++frag) {
    Harness h(3000, 256, 4);
    Receiver& rx = h.make();
    rx.start();
    h.sendManifest();
    std::vector<uint8_t> storage(kChunkHeaderBytes + 4096);
    MessageAssembler assembler(storage.data(), storage.size());
    std::string topic = "ota/dev/dev-1/data";
    std::vector<uint8_t> corr = h.lastCorrelation();
    for (uint32_t i = 0; i < h.chunkCount(); ++i) {
      std::vector<uint8_t> msg = h.chunkBytes(i);
      for (size_t off = 0; off < msg.size(); off += frag) {
        size_t n = std::min(frag, msg.size() - off);
        FragmentHeader fh;
        if (off == 0) {
          fh.topic = bytesOf(topic.c_str());
          fh.correlation = Bytes{corr.data(), corr.size()};
        }
        if (assembler.feed(fh, msg.data() + off, n, off, msg.size()) ==
            MessageAssembler::Result::COMPLETE) {
          rx.onMessage(assembler.message());
        }
      }
    }
    ASSERT_EQ(rx.state(), State::VERIFIED) << "fragment size " << frag;
    ASSERT_TRUE(h.flashHoldsImage()) << "fragment size " << frag;
  }
}

TEST(Receiver, DeclinesTheVersionItAlreadyRuns) {
  Harness h;
  h.cfg.currentVersion = "1.1.0";
  Receiver& rx = h.make();
  rx.start();
  h.sendManifest();
  EXPECT_EQ(rx.state(), State::FAILED);
  EXPECT_TRUE(rx.outcome().upToDate);
  EXPECT_EQ(h.statuses(), std::vector<StatusCode>{StatusCode::ABORTED});
  EXPECT_EQ(h.flash.begins, 0u);
}

TEST(Receiver, StopAndWaitModeStillWorks) {
  Harness h(5000, 1024, 1);
  Receiver& rx = h.make();
  rx.start();
  h.sendManifest();
  for (uint32_t i = 0; i < h.chunkCount(); ++i) {
    size_t before = h.acks().size();
    h.sendChunk(i);
    EXPECT_EQ(h.acks().size(), before + 1) << "every chunk is acknowledged with window 1";
  }
  EXPECT_EQ(rx.state(), State::VERIFIED);
}

TEST(Receiver, RefusesAnInvalidConfiguration) {
  Harness h;
  h.cfg.deviceId = "bad/id";
  Receiver& rx = h.make();
  EXPECT_FALSE(rx.configValid());
  rx.start();
  EXPECT_EQ(rx.state(), State::FAILED);
  EXPECT_TRUE(h.pub.sent.empty());
}

TEST(ReceiverBudget, TransferStateFitsTheRamGoal) {
  // Printed so firmware/README.md can quote measured numbers.
  size_t rxBuffer = kChunkHeaderBytes + kDefaultChunkBytes;
  std::printf("sizeof(Receiver)=%zu sizeof(MessageAssembler)=%zu sizeof(Sha256)=%zu "
              "sizeof(SignatureVerifier)=%zu rx buffer at chunk 4096=%zu\n",
              sizeof(Receiver), sizeof(MessageAssembler), sizeof(Sha256), sizeof(SignatureVerifier),
              rxBuffer);
  EXPECT_LE(sizeof(Receiver) + sizeof(MessageAssembler) + rxBuffer, 16u * 1024u);
}

}  // namespace

TEST(Receiver, UpToDateAnswerEndsWithoutTouchingFlashOrSendingStatus) {
  Harness h;
  h.cfg.currentVersion = "1.1.0";
  Receiver& rx = h.make();
  rx.start();
  h.sendError(ErrorCode::UP_TO_DATE, 0);
  EXPECT_EQ(rx.state(), State::FAILED);
  EXPECT_TRUE(rx.outcome().upToDate);
  EXPECT_TRUE(h.statuses().empty());
  EXPECT_EQ(h.flash.begins, 0u);
}

TEST(Receiver, AnExplicitRequestForTheRunningVersionIsInstalled) {
  Harness h;
  h.cfg.currentVersion = "1.1.0";
  h.cfg.wantedVersion = "1.1.0";
  Receiver& rx = h.make();
  rx.start();
  h.sendManifest();
  EXPECT_EQ(rx.state(), State::RECEIVING);
}

// ---- protocol §8.1: OFFER (the shared behaviour is in tests/vectors/receiver_offer.json) ----

static std::vector<uint8_t> offerBytes(const Harness& h, uint32_t jitterMs, const char* version = "1.1.0") {
  Offer o;
  o.jitterMs = jitterMs;
  std::memcpy(o.sha256, h.sha, 32);
  o.size = static_cast<uint32_t>(h.image.size());
  o.kind = ImageKind::ESP32_APP;
  o.rolloutId = bytesOf("r-1");
  o.product = bytesOf("blink");
  o.version = bytesOf(version);
  std::vector<uint8_t> out(kMaxOfferBytes);
  out.resize(encodeOffer(o, out.data(), out.size()));
  return out;
}

static void tickFor(Harness& h, uint32_t ms) {
  for (uint32_t t = 0; t < ms; ++t) h.rx->tick(++h.clock.now);
}

TEST(ReceiverOffer, SubscribesToItsOfferTopic) {
  Harness h;
  Receiver& rx = h.make();
  EXPECT_STREQ(rx.offerTopic(), "ota/dev/dev-1/offer");
}

TEST(ReceiverOffer, AnOfferAfterAFailedAttemptMakesTheDeviceAskAgain) {
  Harness h;
  Receiver& rx = h.make();
  rx.start();
  h.sendError(ErrorCode::UP_TO_DATE, 0);
  ASSERT_EQ(rx.state(), State::FAILED);
  h.deliver(offerBytes(h, 0), {}, "ota/dev/dev-1/offer");
  EXPECT_EQ(rx.state(), State::OFFER_DELAY);
  rx.tick(h.clock.now);
  EXPECT_EQ(rx.state(), State::REQUESTED);
  EXPECT_EQ(h.requests().size(), 2u);
  EXPECT_EQ(rx.stats().offersTaken, 1u);
}

TEST(ReceiverOffer, AVerifiedImageWaitingToBootIgnoresOffers) {
  Harness h;
  Receiver& rx = h.make();
  rx.start();
  h.sendManifest();
  h.sendAllFrom(0);
  ASSERT_EQ(rx.state(), State::VERIFIED);
  size_t sent = h.pub.sent.size();
  h.deliver(offerBytes(h, 0), {}, "ota/dev/dev-1/offer");
  tickFor(h, 100);
  EXPECT_EQ(rx.state(), State::VERIFIED);
  EXPECT_EQ(h.pub.sent.size(), sent);
  EXPECT_EQ(rx.stats().offersIgnored, 1u);
}

TEST(ReceiverOffer, OffersThatDoNotApplyOrDoNotDecodeAreCountedAndNeverAnswered) {
  Harness h;
  Receiver& rx = h.make();
  h.deliver(offerBytes(h, 0, "1.0.0"), {}, "ota/dev/dev-1/offer");  // the running version
  std::vector<uint8_t> cut = offerBytes(h, 0);
  cut.resize(cut.size() - 1);
  h.deliver(cut, {}, "ota/dev/dev-1/offer");
  h.deliver(std::vector<uint8_t>(h.manifestBytes(0)), {}, "ota/dev/dev-1/offer");  // not an OFFER
  tickFor(h, 100);
  EXPECT_EQ(rx.state(), State::IDLE);
  EXPECT_TRUE(h.pub.sent.empty());
  EXPECT_EQ(rx.stats().offersIgnored, 3u);
  EXPECT_EQ(rx.stats().offersTaken, 0u);
}

TEST(ReceiverOffer, TheDefaultRandomSourceSpreadsDelaysWithinJitter) {
  // Without ReceiverConfig::random the core draws from its own generator; every delay stays in
  // [0, jitterMs] and a fleet does not all ask at the same millisecond.
  std::vector<uint32_t> delays;
  for (int d = 0; d < 20; ++d) {
    Harness h;
    std::string id = "dev-" + std::to_string(d);
    h.cfg.deviceId = id.c_str();
    Receiver& rx = h.make();
    std::string topic = "ota/dev/" + id + "/offer";
    h.deliver(offerBytes(h, 1000), {}, topic);
    ASSERT_EQ(rx.state(), State::OFFER_DELAY);
    uint32_t waited = 0;
    while (rx.state() == State::OFFER_DELAY && waited <= 1001) {
      rx.tick(++h.clock.now);
      ++waited;
    }
    ASSERT_EQ(rx.state(), State::REQUESTED);
    delays.push_back(waited);
  }
  for (uint32_t w : delays) EXPECT_LE(w, 1001u);
  std::sort(delays.begin(), delays.end());
  EXPECT_GT(delays.back() - delays.front(), 100u);
}
