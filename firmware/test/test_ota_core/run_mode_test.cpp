// run_mode_test.cpp: what the platform does after a step in each run mode (run_mode.h), as a
// table and along the life of a listening device driven through the real Receiver: asked at
// link-up and told UP_TO_DATE, it keeps listening; an OFFER makes it ask; a VERIFIED image makes
// it restart; a failed probation stops it in both modes.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "fakes.h"
#include "ota_core/run_mode.h"

using namespace ota_core;
using fakes::Harness;

namespace {

std::vector<uint8_t> offerFor(const Harness& h, uint32_t jitterMs) {
  Offer o;
  o.jitterMs = jitterMs;
  std::memcpy(o.sha256, h.sha, 32);
  o.size = static_cast<uint32_t>(h.image.size());
  o.kind = ImageKind::ESP32_APP;
  o.rolloutId = bytesOf("r-1");
  o.product = bytesOf("blink");
  o.version = bytesOf("1.1.0");
  std::vector<uint8_t> out(kMaxOfferBytes);
  out.resize(encodeOffer(o, out.data(), out.size()));
  return out;
}

const State kAllStates[] = {State::IDLE,     State::REQUESTED, State::BACKING_OFF,
                            State::RECEIVING, State::VERIFIED, State::FAILED,
                            State::OFFER_DELAY};

}  // namespace

TEST(RunMode, AOnceRunStopsWhenTheAttemptEndsVerifiedOrFailed) {
  for (State s : kAllStates) {
    RunAction want = s == State::VERIFIED || s == State::FAILED ? RunAction::STOP
                                                                : RunAction::CONTINUE;
    EXPECT_EQ(nextRunAction(RunMode::ONCE, s, SelfTestPhase::IDLE), want) << toString(s);
  }
}

TEST(RunMode, AListeningDeviceRestartsOnlyIntoAVerifiedImageAndOtherwiseKeepsListening) {
  for (State s : kAllStates) {
    RunAction want = s == State::VERIFIED ? RunAction::RESTART : RunAction::CONTINUE;
    EXPECT_EQ(nextRunAction(RunMode::LISTEN, s, SelfTestPhase::PASSED), want) << toString(s);
  }
}

TEST(RunMode, AFailedProbationStopsTheRunInBothModesWhateverTheReceiverDoes) {
  for (RunMode m : {RunMode::ONCE, RunMode::LISTEN}) {
    for (State s : kAllStates) {
      EXPECT_EQ(nextRunAction(m, s, SelfTestPhase::ROLLING_BACK), RunAction::STOP) << toString(s);
    }
  }
}

TEST(RunMode, AListeningDeviceToldUpToDateAsksAfterAnOfferAndRestartsOnceVerified) {
  Harness h;
  Receiver& rx = h.make();
  auto next = [&] { return nextRunAction(RunMode::LISTEN, rx.state(), SelfTestPhase::IDLE); };
  rx.start();  // the link came up
  h.sendError(ErrorCode::UP_TO_DATE, 0);
  ASSERT_EQ(rx.state(), State::FAILED);
  EXPECT_EQ(next(), RunAction::CONTINUE);
  EXPECT_EQ(nextRunAction(RunMode::ONCE, rx.state(), SelfTestPhase::IDLE), RunAction::STOP);
  h.deliver(offerFor(h, 0), {}, "ota/dev/dev-1/offer");
  ASSERT_EQ(rx.state(), State::OFFER_DELAY);
  EXPECT_EQ(next(), RunAction::CONTINUE);
  rx.tick(h.clock.now);
  ASSERT_EQ(rx.state(), State::REQUESTED);
  EXPECT_EQ(h.requests().size(), 2u);
  h.sendManifest();
  h.sendAllFrom(0);
  ASSERT_EQ(rx.state(), State::VERIFIED);
  EXPECT_EQ(next(), RunAction::RESTART);
}
