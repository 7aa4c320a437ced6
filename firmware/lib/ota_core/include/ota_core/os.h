// ota_core/os.h: the OS interface of the core (like the AWS OTA agent's OtaOSInterface with
// ota_os_freertos.c / ota_os_posix.c): a bounded queue of 32-bit items between two tasks and a
// way to start a task. The ESP32 implements it with FreeRTOS (firmware/src/os_freertos.*), the
// host with std::thread (firmware/host/os_std.*), so that the host build and its end-to-end
// tests run the same concurrency design the device runs: the MQTT task only copies messages
// into an Inbox, and one receiver task owns the Receiver.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ota_core {

/// A bounded FIFO of 32-bit items, safe between tasks. Capacity is fixed when it is created.
class OsQueue {
 public:
  virtual ~OsQueue() = default;
  /// Appends `item` without waiting; false when the queue is full (FreeRTOS: xQueueSendToBack
  /// with 0 ticks returns errQUEUE_FULL). Callers on the network task must never block.
  virtual bool trySend(uint32_t item) = 0;
  /// Takes the oldest item, waiting up to `timeoutMs`; false when none arrived in time.
  virtual bool receive(uint32_t& item, uint32_t timeoutMs) = 0;
};

/// Entry point of a task started with Os::startTask; runs until the program ends.
using TaskEntry = void (*)(void* argument);

/// Creates the objects of the concurrency design. Everything is created at start-up.
class Os {
 public:
  virtual ~Os() = default;
  /// Starts `entry(argument)` in a new task (a FreeRTOS task, or a thread on the host) with a
  /// stack of `stackBytes` (ignored where the platform chooses) and the given priority.
  virtual bool startTask(const char* name, TaskEntry entry, void* argument, uint32_t stackBytes,
                         uint32_t priority) = 0;
};

}  // namespace ota_core
