// os_freertos.cpp: see os_freertos.h. Semantics from ESP-IDF v5.5.3
// components/freertos/FreeRTOS-Kernel/queue.c and include/freertos/task.h.
#include "os_freertos.h"

#include "freertos/task.h"

FreeRtosQueue::FreeRtosQueue(size_t capacity)
    : queue_(xQueueCreate(static_cast<UBaseType_t>(capacity), sizeof(uint32_t))) {}

bool FreeRtosQueue::trySend(uint32_t item) {
  // xQueueGenericSend (queue.c): with 0 ticks to wait a full queue returns errQUEUE_FULL at once;
  // the MQTT task calls this and must never block on the receiver task.
  return queue_ != nullptr && xQueueSendToBack(queue_, &item, 0) == pdTRUE;
}

bool FreeRtosQueue::receive(uint32_t& item, uint32_t timeoutMs) {
  // xQueueReceive (queue.c) copies the item out and returns pdFALSE when the wait timed out.
  return queue_ != nullptr && xQueueReceive(queue_, &item, pdMS_TO_TICKS(timeoutMs)) == pdTRUE;
}

bool FreeRtosOs::startTask(const char* name, ota_core::TaskEntry entry, void* argument,
                           uint32_t stackBytes, uint32_t priority) {
  // task.h (xTaskCreate): in ESP-IDF the stack depth is given in bytes, not words. The entry
  // never returns (a FreeRTOS task must not return from its function).
  return xTaskCreate(entry, name, stackBytes, argument, static_cast<UBaseType_t>(priority),
                     nullptr) == pdPASS;
}
