// ota_config.h: the Kconfig values (src/Kconfig.projbuild) the glue reads. In a real build
// sdkconfig.h defines every CONFIG_OTA_* symbol; the fallbacks below only apply when a file is
// compiled without the project's sdkconfig (a check against the bare IDF headers), and equal
// the Kconfig defaults.
#pragma once

#include "sdkconfig.h"

#ifndef CONFIG_OTA_WIFI_SSID
#define CONFIG_OTA_WIFI_SSID ""
#endif
#ifndef CONFIG_OTA_WIFI_PASSWORD
#define CONFIG_OTA_WIFI_PASSWORD ""
#endif
#ifndef CONFIG_OTA_BROKER_URI
#define CONFIG_OTA_BROKER_URI "mqtt://192.168.1.10:1883"
#endif
#ifndef CONFIG_OTA_DEVICE_ID
#define CONFIG_OTA_DEVICE_ID ""
#endif
#ifndef CONFIG_OTA_TOPIC_PREFIX
#define CONFIG_OTA_TOPIC_PREFIX "ota"
#endif
#ifndef CONFIG_OTA_CHUNK_SIZE
#define CONFIG_OTA_CHUNK_SIZE 4096
#endif
#ifndef CONFIG_OTA_INBOX_SLOTS
#define CONFIG_OTA_INBOX_SLOTS 2
#endif
#ifndef CONFIG_OTA_WINDOW
#define CONFIG_OTA_WINDOW 64
#endif
#ifndef CONFIG_OTA_SHARED_STREAM
#define CONFIG_OTA_SHARED_STREAM 1
#endif
#ifndef CONFIG_OTA_CHECK_INTERVAL_S
#define CONFIG_OTA_CHECK_INTERVAL_S 3600
#endif
#ifndef CONFIG_OTA_SELFTEST_TIMEOUT_S
#define CONFIG_OTA_SELFTEST_TIMEOUT_S 60
#endif
