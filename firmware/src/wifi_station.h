// wifi_station.h: joins the configured access point as a station and keeps reconnecting.
#pragma once

#include <cstdint>

/// Starts Wi-Fi (netif, default event loop, station) and waits up to `timeoutMs` for an IP
/// address. Returns true once connected; reconnection continues in the background either way.
bool wifiStationStart(const char* ssid, const char* password, uint32_t timeoutMs);

/// Turns Wi-Fi power save off (`on` = true, while a transfer runs) or back to the default.
void wifiStationLowLatency(bool on);
