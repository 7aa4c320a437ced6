// fuzz_receiver.cpp: libFuzzer entry point of the receiver target (see receiver_driver.h). A
// broken property aborts, which libFuzzer reports as a crash and saves the input.
#include <cstdio>
#include <cstdlib>

#include "receiver_driver.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (const char* broken = ota_fuzz::fuzzReceiver(data, size)) {
    std::fprintf(stderr, "Property broken: %s\n", broken);
    std::abort();
  }
  return 0;
}
