// ota_core/crc32.h: CRC-32 of CHUNK payloads (protocol §4.4: IEEE 802.3, reflected, polynomial
// 0xEDB88320, initial and final XOR 0xFFFFFFFF, the value zlib's crc32() returns).
#pragma once

#include <cstddef>
#include <cstdint>

namespace ota_core {

/// Continues a CRC-32 over `size` bytes; start with `crc` = 0 (zlib convention), so
/// crc32(crc32(0, a), b) == crc32(0, a||b).
uint32_t crc32(uint32_t crc, const uint8_t* data, size_t size);

}  // namespace ota_core
