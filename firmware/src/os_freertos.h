// os_freertos.h: the core's OS interface (ota_core/os.h) over FreeRTOS as ESP-IDF v5.5 ships it:
// a queue of uint32_t items and xTaskCreate. The device counterpart of host/os_std.*.
#pragma once

#include <cstddef>
#include <cstdint>

#include "freertos/FreeRTOS.h"
#include "freertos/queue.h"
#include "ota_core/os.h"

/// A FreeRTOS queue of uint32_t created at start-up (xQueueCreate); never deleted.
class FreeRtosQueue : public ota_core::OsQueue {
 public:
  explicit FreeRtosQueue(size_t capacity);
  /// False when xQueueCreate failed (out of memory at start-up).
  bool valid() const { return queue_ != nullptr; }
  bool trySend(uint32_t item) override;
  bool receive(uint32_t& item, uint32_t timeoutMs) override;

 private:
  QueueHandle_t queue_;
};

/// Starts tasks with xTaskCreate (ESP-IDF counts the stack in bytes).
class FreeRtosOs : public ota_core::Os {
 public:
  bool startTask(const char* name, ota_core::TaskEntry entry, void* argument, uint32_t stackBytes,
                 uint32_t priority) override;
};
