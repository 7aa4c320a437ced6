// run_mode.cpp: see run_mode.h.
#include "ota_core/run_mode.h"

namespace ota_core {

const char* toString(RunAction action) {
  switch (action) {
    case RunAction::CONTINUE: return "CONTINUE";
    case RunAction::STOP: return "STOP";
    case RunAction::RESTART: return "RESTART";
  }
  return "UNKNOWN";
}

RunAction nextRunAction(RunMode mode, State state, SelfTestPhase selfTest) {
  // A failed probation wins in both modes: the platform is switching back to the old image.
  if (selfTest == SelfTestPhase::ROLLING_BACK) return RunAction::STOP;
  if (state == State::VERIFIED) return mode == RunMode::LISTEN ? RunAction::RESTART : RunAction::STOP;
  // FAILED ends a ONCE run; a listening device stays (the Receiver takes an OFFER in FAILED).
  if (state == State::FAILED && mode == RunMode::ONCE) return RunAction::STOP;
  return RunAction::CONTINUE;
}

}  // namespace ota_core
