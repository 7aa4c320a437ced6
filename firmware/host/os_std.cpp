// os_std.cpp: see os_std.h.
#include "os_std.h"

#include <chrono>

namespace ota_host {

bool StdQueue::trySend(uint32_t item) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (items_.size() >= capacity_) return false;
    items_.push_back(item);
  }
  nonEmpty_.notify_one();
  return true;
}

bool StdQueue::receive(uint32_t& item, uint32_t timeoutMs) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (!nonEmpty_.wait_for(lock, std::chrono::milliseconds(timeoutMs),
                          [this] { return !items_.empty(); })) {
    return false;
  }
  item = items_.front();
  items_.pop_front();
  return true;
}

StdOs::~StdOs() {
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
}

bool StdOs::startTask(const char*, ota_core::TaskEntry entry, void* argument, uint32_t,
                      uint32_t) {
  threads_.emplace_back(entry, argument);
  return true;
}

}  // namespace ota_host
