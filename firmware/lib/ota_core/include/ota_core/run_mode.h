// ota_core/run_mode.h: what the platform does after each step of the receiver task, in the two
// ways a device can run. ONCE is one update attempt (the host CLI's default: ask, download, end).
// LISTEN is a device that stays connected (protocol §8.1): it asks when its link comes up, then
// waits on its offer topic; an OFFER that applies makes the Receiver wait its random delay and
// ask (the Receiver's own table); a VERIFIED image is activated, so the device restarts into it
// and its self-test reports BOOTED; anything that ends without an image (UP_TO_DATE, a failed
// attempt) leaves it listening for the next OFFER. The glue only carries the action out.
#pragma once

#include <cstdint>

#include "ota_core/receiver.h"
#include "ota_core/self_test.h"

namespace ota_core {

/// How the device runs (see file header).
enum class RunMode : uint8_t { ONCE, LISTEN };

/// What the platform does next.
enum class RunAction : uint8_t {
  /// Keep stepping the receiver task.
  CONTINUE,
  /// End the run (ONCE: the attempt ended; both: a failed self-test is rolling back).
  STOP,
  /// Restart into the image just activated (LISTEN after VERIFIED: the reboot).
  RESTART,
};
const char* toString(RunAction action);

/// The action after a step, from the Receiver's state and the self-test's phase.
RunAction nextRunAction(RunMode mode, State state, SelfTestPhase selfTest);

}  // namespace ota_core
