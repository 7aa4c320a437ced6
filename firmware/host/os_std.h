// os_std.h: the core's OS interface (ota_core/os.h) over the C++ standard library: a bounded
// queue on std::mutex + std::condition_variable and tasks as std::thread. The host counterpart
// of src/os_freertos.*, with the same semantics: trySend never blocks and fails when full,
// receive waits at most its timeout.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "ota_core/os.h"

namespace ota_host {

/// See file header.
class StdQueue : public ota_core::OsQueue {
 public:
  explicit StdQueue(size_t capacity) : capacity_(capacity) {}
  bool trySend(uint32_t item) override;
  bool receive(uint32_t& item, uint32_t timeoutMs) override;

 private:
  size_t capacity_;
  std::mutex mutex_;
  std::condition_variable nonEmpty_;
  std::deque<uint32_t> items_;
};

/// Starts tasks as threads; joins them when destroyed (their entry must return by then).
class StdOs : public ota_core::Os {
 public:
  ~StdOs() override;
  bool startTask(const char* name, ota_core::TaskEntry entry, void* argument,
                 uint32_t stackBytes, uint32_t priority) override;

 private:
  std::vector<std::thread> threads_;
};

}  // namespace ota_host
