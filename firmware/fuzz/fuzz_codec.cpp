// fuzz_codec.cpp: libFuzzer entry point of the codec target (see codec_driver.h). A broken
// property aborts, which libFuzzer reports as a crash and saves the input.
#include <cstdio>
#include <cstdlib>

#include "codec_driver.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (const char* broken = ota_fuzz::fuzzCodec(data, size)) {
    std::fprintf(stderr, "Property broken: %s\n", broken);
    std::abort();
  }
  return 0;
}
