// pio_main.cpp: only for `pio test -e native`. PlatformIO builds test/ plus libraries, not
// host/, and expects the test to bring its own main() (GoogleTest runner); the CMake build
// (host/CMakeLists.txt) links the same host sources and gtest_main instead, and skips this file.
#ifdef PIO_UNIT_TESTING
#include <gtest/gtest.h>

#include "../../host/file_flash.cpp"
#include "../../host/file_state_store.cpp"
#include "../../host/os_std.cpp"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
#endif
