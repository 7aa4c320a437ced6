// receiver_main.cpp: ota-receiver-host, the firmware core driven over a real broker with a
// file-backed flash and state store (`--flash memory` keeps the slot bytes in memory instead,
// for the benchmark). One run = one update attempt; the last stdout line is JSON:
//   {"status":"VERIFIED","sha256":"...","bytes":N,"seconds":S,"resumedFrom":N,...,
//    "cpuSeconds":C}  (C: this process's user + system CPU, all threads, over `seconds`)
// --listen runs a device that stays connected (ota_core/run_mode.h): it also subscribes to its
// offer topic, keeps listening after UP_TO_DATE or a failed attempt, and after VERIFIED prints
// the report line and "reboots": it executes itself again with --current set to the new version
// (same process id), so the next boot runs the self-test and reports BOOTED.
// Exit 0 on VERIFIED, 1 on any failure, 2 on bad usage, 3 for a simulated power cut, 4 when the
// boot self-test failed and the boot slot was switched back (the next run is the reboot).
//
// By default it runs the ESP32's concurrency design: libmosquitto's network thread copies each
// message into an Inbox of --slots slots, and a receiver task (a std::thread started through the
// core's OS interface) owns the Receiver, ticks it, writes the flash and publishes. --inline runs
// the old design instead (everything in the network callback), for the benchmark.
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "file_boot.h"
#include "file_flash.h"
#include "file_state_store.h"
#include "mosquitto_transport.h"
#include "os_std.h"
#include "ota_core/crypto.h"
#include "ota_core/inbox.h"
#include "ota_core/receiver.h"
#include "ota_core/receiver_task.h"
#include "ota_core/run_mode.h"
#include "ota_core/topics.h"

namespace {

const char kUsage[] =
    "usage: ota-receiver-host --device-id ID --product NAME [options]\n"
    "  --host H (127.0.0.1)  --port P (1883)  --prefix P (ota)  --mqtt-version 5|311 (5)\n"
    "  --want VERSION|latest (latest)  --current VERSION (0.0.0)\n"
    "  --chunk BYTES (4096)  --window N (8)  --dir DIR (./ota-host-data)  --slot-size BYTES (2031616)\n"
    "  --pubkey PEM          require an ECDSA P-256 signature by this key\n"
    "  --generic             accept generic files (manifest kind 1) besides ESP32 images\n"
    "  --shared              ask for the shared image stream (protocol §11; MQTT 5 only)\n"
    "  --exit-after-bytes N  simulate a power cut: exit(3) once N bytes were written\n"
    "  --fail-write N        make flash write call N fail (with --fail-count C, default 1)\n"
    "  --timeout-s S (120)   give up after S seconds (--listen: per boot)\n"
    "  --listen              stay connected: take OFFERs, reboot into a verified image\n"
    "  --slots N (2)         inbox slots between the network thread and the receiver task\n"
    "  --slot-wait-ms MS (350)  longest wait of the network thread for a free slot (0: drop)\n"
    "  --tcp-window BYTES    socket receive buffer, e.g. 5760 like lwIP on the ESP32\n"
    "  --self-test-s S (60)  time an image on probation has to pass its self-test\n"
    "  --inline              old design: run the receiver inside the network callback\n"
    "  --flash file|memory (file)  where the slot bytes live; memory: same flash rules, no\n"
    "                        file system per write, nothing survives the process (no resume)\n"
    "  --esp32-flash         model the ESP32 flash: 45 ms per 4 KiB erase, 10 ms per 4 KiB program\n"
    "  --erase-ms MS  --program-ms MS   the flash model's times (per 4 KiB)\n"
    "  --cafile F --cert F --key F   TLS\n";

class SteadyClock : public ota_core::Clock {
 public:
  uint32_t nowMs() override {
    return static_cast<uint32_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::steady_clock::now().time_since_epoch())
                                     .count());
  }
};

/// The command line of the next boot: this one with `--current` set to `version`.
std::vector<std::string> rebootArgs(int argc, char** argv, const char* version) {
  std::vector<std::string> args;
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--current") == 0 && i + 1 < argc) {
      ++i;
      continue;
    }
    args.push_back(argv[i]);
  }
  args.push_back("--current");
  args.push_back(version);
  return args;
}

/// The "reboot" of a listening device: executes this program again (same process id). Returns
/// only when that failed.
void reboot(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::fflush(stdout);
  std::fflush(stderr);
  ::execv("/proc/self/exe", argv.data());
  std::perror("Cannot reboot: execv /proc/self/exe failed");
}

/// User + system CPU seconds of this process so far, every thread.
double processCpuSeconds() {
  struct rusage u = {};
  ::getrusage(RUSAGE_SELF, &u);
  auto sec = [](const struct timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return sec(u.ru_utime) + sec(u.ru_stime);
}

std::string hexOf(const uint8_t* p, size_t n) {
  std::string s;
  char b[3];
  for (size_t i = 0; i < n; ++i) {
    std::snprintf(b, sizeof b, "%02x", p[i]);
    s += b;
  }
  return s;
}

/// One boot of the device: everything it owns (the broker connection included) is gone when it
/// returns. Sets `rebootInto` to the version to restart into when a listening device verified
/// one.
int runBoot(int argc, char** argv, std::string& rebootInto) {
  ota_host::TransportOptions net;
  std::string deviceId, product, prefix = "ota", want = "latest", current = "0.0.0";
  std::string dir = "ota-host-data", pubkeyPath;
  uint32_t chunk = ota_core::kDefaultChunkBytes, slotSize = 0x1F0000;
  unsigned window = ota_core::kDefaultWindow;
  unsigned long long exitAfter = 0;
  unsigned failWrite = 0, failCount = 1, timeoutS = 120;
  unsigned slots = static_cast<unsigned>(ota_core::kMinInboxSlots);
  uint32_t slotWaitMs = ota_core::kInboxSlotWaitMs;
  unsigned selfTestS = 60;
  bool generic = false, inlineDesign = false, shared = false;
  ota_core::RunMode mode = ota_core::RunMode::ONCE;
  ota_host::FlashTiming timing;
  ota_host::FlashBacking backing = ota_host::FlashBacking::FILE;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "missing value for %s\n%s", a.c_str(), kUsage);
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--host") net.host = next();
    else if (a == "--port") net.port = std::atoi(next().c_str());
    else if (a == "--device-id") deviceId = next();
    else if (a == "--product") product = next();
    else if (a == "--prefix") prefix = next();
    else if (a == "--want") want = next();
    else if (a == "--current") current = next();
    else if (a == "--chunk") chunk = static_cast<uint32_t>(std::strtoul(next().c_str(), nullptr, 10));
    else if (a == "--window") window = static_cast<unsigned>(std::strtoul(next().c_str(), nullptr, 10));
    else if (a == "--dir") dir = next();
    else if (a == "--slot-size") slotSize = static_cast<uint32_t>(std::strtoul(next().c_str(), nullptr, 0));
    else if (a == "--pubkey") pubkeyPath = next();
    else if (a == "--generic") generic = true;
    else if (a == "--shared") shared = true;
    else if (a == "--mqtt-version") {
      std::string v = next();
      if (v != "5" && v != "311") {
        std::fprintf(stderr, "--mqtt-version must be 5 or 311, got \"%s\"\n", v.c_str());
        return 2;
      }
      net.mqtt5 = v == "5";
    } else if (a == "--exit-after-bytes") exitAfter = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--fail-write") failWrite = static_cast<unsigned>(std::strtoul(next().c_str(), nullptr, 10));
    else if (a == "--fail-count") failCount = static_cast<unsigned>(std::strtoul(next().c_str(), nullptr, 10));
    else if (a == "--timeout-s") timeoutS = static_cast<unsigned>(std::strtoul(next().c_str(), nullptr, 10));
    else if (a == "--slots") slots = static_cast<unsigned>(std::strtoul(next().c_str(), nullptr, 10));
    else if (a == "--inline") inlineDesign = true;
    else if (a == "--listen") mode = ota_core::RunMode::LISTEN;
    else if (a == "--slot-wait-ms") slotWaitMs = static_cast<uint32_t>(std::strtoul(next().c_str(), nullptr, 10));
    else if (a == "--tcp-window") net.tcpWindow = std::atoi(next().c_str());
    else if (a == "--self-test-s") selfTestS = static_cast<unsigned>(std::strtoul(next().c_str(), nullptr, 10));
    else if (a == "--flash") {
      std::string v = next();
      if (v != "file" && v != "memory") {
        std::fprintf(stderr, "--flash must be file or memory, got \"%s\"\n", v.c_str());
        return 2;
      }
      backing = v == "memory" ? ota_host::FlashBacking::MEMORY : ota_host::FlashBacking::FILE;
    } else if (a == "--esp32-flash") timing = ota_host::FlashTiming::esp32();
    else if (a == "--erase-ms") timing.eraseSectorUs = static_cast<uint32_t>(std::strtod(next().c_str(), nullptr) * 1000);
    else if (a == "--program-ms") timing.program4KiBUs = static_cast<uint32_t>(std::strtod(next().c_str(), nullptr) * 1000);
    else if (a == "--cafile") net.caFile = next();
    else if (a == "--cert") net.certFile = next();
    else if (a == "--key") net.keyFile = next();
    else if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else {
      std::fprintf(stderr, "unknown option \"%s\"\n%s", a.c_str(), kUsage);
      return 2;
    }
  }
  if (deviceId.empty() || product.empty() || window > ota_core::kMaxWindow) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  if (slots < ota_core::kMinInboxSlots || slots > ota_core::kMaxInboxSlots) {
    std::fprintf(stderr, "--slots must be %zu..%zu, got %u\n", ota_core::kMinInboxSlots,
                 ota_core::kMaxInboxSlots, slots);
    return 2;
  }
  ::mkdir(dir.c_str(), 0755);
  net.clientId = deviceId;  // protocol §2: client id = device id (broker ACLs key on it)

  ota_core::SignatureVerifier verifier;
  if (!pubkeyPath.empty()) {
    std::ifstream in(pubkeyPath, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string pem = ss.str();
    pem.push_back('\0');  // mbedTLS wants the PEM terminator counted
    if (!in || !verifier.loadPublicKey(reinterpret_cast<const uint8_t*>(pem.data()), pem.size())) {
      std::fprintf(stderr, "Cannot load public key \"%s\": not a P-256 public key in PEM\n",
                   pubkeyPath.c_str());
      return 2;
    }
  }

  ota_host::FileFlash flash(dir, slotSize, backing);
  if (exitAfter != 0) flash.exitAfterBytes(exitAfter);
  if (failWrite != 0) flash.failWrites(failWrite, failCount);
  flash.setTiming(timing);
  // The resume point lives where the slot bytes do: with the flash in memory, a point on disk
  // from an earlier run would rehash bytes that are gone.
  ota_host::FileStateStore fileStore(dir);
  ota_host::MemoryStateStore memoryStore;
  ota_core::StateStore& store = backing == ota_host::FlashBacking::MEMORY
                                    ? static_cast<ota_core::StateStore&>(memoryStore)
                                    : fileStore;
  SteadyClock clock;
  ota_host::MosquittoTransport transport;
  // The receiver publishes through this (the self-test's view of its requests on the device).
  char requestTopic[ota_core::kMaxOwnTopicBytes] = {};
  ota_core::buildDeviceTopic(requestTopic, sizeof requestTopic, prefix.c_str(), deviceId.c_str(),
                             ota_core::TopicKind::REQUEST);
  ota_core::TrackingPublisher publisher(transport, requestTopic);

  ota_core::ReceiverConfig cfg;
  cfg.prefix = prefix.c_str();
  cfg.deviceId = deviceId.c_str();
  cfg.product = product.c_str();
  cfg.currentVersion = current.c_str();
  cfg.wantedVersion = want.c_str();
  cfg.chunkSize = chunk;
  cfg.window = static_cast<uint16_t>(window);
  cfg.maxChunkBytes = ota_core::kMaxChunkBytes;
  cfg.mqtt5 = net.mqtt5;
  cfg.shared = shared;
  cfg.acceptEsp32App = true;
  cfg.acceptGenericFile = generic;
  cfg.verifier = &verifier;
  // The boot model: the record is saved before the boot slot switches (RecordingSink).
  ota_host::FileBootControl boot(flash, dir);
  ota_host::FileBootStore bootStore(dir);
  std::string targetLabel = "slot_" + std::to_string(flash.targetSlot());
  ota_core::RecordingSink sink(flash, bootStore, targetLabel.c_str());
  ota_core::Receiver rx(cfg, sink, publisher, store, clock);
  sink.watch(rx);
  ota_core::SelfTest selfTest(boot, bootStore, publisher, rx.statusTopic(), current.c_str(),
                              selfTestS * 1000u);
  selfTest.begin(clock.nowMs());
  if (!rx.configValid()) {
    std::fprintf(stderr, "Invalid configuration: device id \"%s\", prefix \"%s\", product \"%s\"\n",
                 deviceId.c_str(), prefix.c_str(), product.c_str());
    return 2;
  }
  // The inbox: `slots` preallocated messages of the largest CHUNK this receiver accepts.
  const size_t slotBytes = ota_core::kChunkHeaderBytes + cfg.maxChunkBytes;
  std::vector<std::vector<uint8_t>> slotStorage(slots, std::vector<uint8_t>(slotBytes));
  std::vector<std::unique_ptr<ota_core::MessageAssembler>> assemblers;
  std::vector<ota_core::MessageAssembler*> slotPointers;
  for (auto& bytes : slotStorage) {
    assemblers.push_back(std::make_unique<ota_core::MessageAssembler>(bytes.data(), bytes.size()));
    slotPointers.push_back(assemblers.back().get());
  }
  ota_host::StdQueue freeSlots(slots), readySlots(slots + 1);
  ota_core::Inbox inbox(slotPointers.data(), slots, freeSlots, readySlots, slotWaitMs);

  if (inlineDesign) {
    transport.onMessage([&](const ota_core::InboundMessage& m) { rx.onMessage(m); });
  } else {
    transport.deliverTo(&inbox);
  }
  std::string error;
  std::vector<std::string> topics = {rx.dataTopic(), rx.errorTopic()};
  if (mode == ota_core::RunMode::LISTEN) topics.push_back(rx.offerTopic());
  if (mode == ota_core::RunMode::LISTEN && inlineDesign) {
    std::fputs("--listen runs the task design only; leave out --inline\n", stderr);
    return 2;
  }
  if (!transport.connect(net, topics, error) ||
      (!inlineDesign && !transport.startThread(error))) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return 1;
  }
  std::printf("slot %d boots now; writing slot %d; mqtt %s; %s design; running %s%s\n",
              flash.bootSlot(), flash.targetSlot(), net.mqtt5 ? "5" : "3.1.1",
              inlineDesign ? "inline" : "task", current.c_str(),
              mode == ota_core::RunMode::LISTEN ? "; listening for offers" : "");
  std::fflush(stdout);

  auto t0 = std::chrono::steady_clock::now();
  const double cpu0 = processCpuSeconds();
  auto seconds = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  uint32_t lastPrinted = 0;
  ota_core::State lastState = rx.state();
  ota_core::SelfTestPhase lastPhase = selfTest.phase();
  uint32_t lastOffers = 0;
  uint32_t lastRejoined = 0;
  // Progress lines and the end condition, checked after every step on the receiver's thread.
  auto watch = [&]() -> bool {
    const ota_core::ReceiverStats& s = rx.stats();
    if (rx.state() != lastState) {
      std::printf("state %s\n", ota_core::toString(rx.state()));
      if (rx.state() == ota_core::State::RECEIVING && s.resumedFrom != 0) {
        std::printf("resuming at offset %u (rehashed %u bytes)\n", s.resumedFrom, s.rehashedBytes);
      }
      lastState = rx.state();
    }
    if (s.bytesWritten - lastPrinted >= 128 * 1024) {
      lastPrinted = s.bytesWritten;
      std::printf("progress written=%u chunks=%u dup=%u crc=%u gap=%u nacks=%u dropped=%u\n",
                  s.bytesWritten, s.chunksWritten, s.duplicates, s.crcErrors, s.gaps, s.nacksSent,
                  inbox.droppedPoolFull());
    }
    if (s.sharedRejoined != lastRejoined) {
      lastRejoined = s.sharedRejoined;
      std::printf("shared topic subscribed again after a reconnect (%u shared chunks written)\n",
                  s.sharedWritten);
    }
    if (s.offersTaken != lastOffers) {
      lastOffers = s.offersTaken;
      std::printf("offer taken (%u so far)\n", lastOffers);
    }
    if (selfTest.phase() != lastPhase) {
      lastPhase = selfTest.phase();
      std::printf("self-test %s %s\n", ota_core::toString(lastPhase), selfTest.failure());
    }
    std::fflush(stdout);
    return ota_core::nextRunAction(mode, rx.state(), lastPhase) != ota_core::RunAction::CONTINUE ||
           seconds() >= timeoutS;
  };

  if (inlineDesign) {
    bool started = false;
    while (!watch()) {
      if (!transport.loop(5)) {
        std::fprintf(stderr, "connection to the broker lost\n");
        break;
      }
      if (!started && transport.ready()) {
        started = true;
        rx.start();
      }
      if (started) rx.tick(clock.nowMs());
    }
  } else {
    ota_core::ReceiverTaskOptions taskOptions;
    taskOptions.mqtt5 = net.mqtt5;
    ota_core::ReceiverTask task(rx, inbox, clock, publisher, &selfTest, taskOptions);
    struct Context {
      ota_core::ReceiverTask* task;
      std::function<bool()> done;
    } context{&task, watch};
    ota_host::StdOs os;
    os.startTask("ota_rx", [](void* arg) {
      auto* c = static_cast<Context*>(arg);
      do {
        c->task->step();
      } while (!c->done());
    }, &context, 0, 0);
  }  // ~StdOs joins the receiver task
  if (transport.subscriptionRefused()) std::fprintf(stderr, "the broker refused a subscription\n");
  // The transfer's time ends with its last state change, not with the drain below.
  double elapsed = seconds();
  double cpuSeconds = processCpuSeconds() - cpu0;
  // Let the final STATUS reach the broker (QoS 1: wait for its PUBACK, at most 2 s).
  auto drainUntil = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (transport.inFlight() > 0 && std::chrono::steady_clock::now() < drainUntil) {
    if (inlineDesign) {
      transport.loop(10);
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  const ota_core::Outcome& o = rx.outcome();
  const ota_core::ReceiverStats& s = rx.stats();
  std::string status;
  if (selfTest.phase() == ota_core::SelfTestPhase::ROLLING_BACK) status = "SELF_TEST_FAILED";
  else if (rx.state() == ota_core::State::VERIFIED) status = "VERIFIED";
  else if (rx.state() != ota_core::State::FAILED) status = "TIMEOUT";
  else if (o.upToDate) status = "UP_TO_DATE";
  else if (o.senderError) status = std::string("ERROR_") + ota_core::toString(o.error);
  else status = ota_core::toString(o.status);
  std::printf(
      "{\"status\":\"%s\",\"sha256\":\"%s\",\"bytes\":%u,\"seconds\":%.3f,\"resumedFrom\":%u,"
      "\"bytesWritten\":%u,\"chunks\":%u,\"rehashed\":%u,\"duplicates\":%u,\"crcErrors\":%u,"
      "\"gaps\":%u,\"acks\":%u,\"nacks\":%u,\"requests\":%u,\"bootSlot\":%d,\"dropped\":%u,"
      "\"waited\":%u,\"sharedWritten\":%u,\"sharedRejoined\":%u,\"sharedLapsed\":%u,\"design\":\"%s\",\"selfTest\":\"%s\",\"flashSeconds\":%.3f,\"cpuSeconds\":%.4f,\"detail\":\"%s\"}\n",
      status.c_str(), hexOf(o.sha256, sizeof o.sha256).c_str(), o.size, elapsed, s.resumedFrom,
      s.bytesWritten, s.chunksWritten, s.rehashedBytes, s.duplicates, s.crcErrors, s.gaps,
      s.acksSent, s.nacksSent, s.requests, flash.bootSlot(), inbox.droppedPoolFull(),
      inbox.waitedForSlot(), s.sharedWritten, s.sharedRejoined, s.sharedLapsed, inlineDesign ? "inline" : "task", ota_core::toString(selfTest.phase()), static_cast<double>(flash.modelledUs()) / 1e6, cpuSeconds, o.detail);
  if (selfTest.phase() == ota_core::SelfTestPhase::ROLLING_BACK) return 4;
  if (ota_core::nextRunAction(mode, rx.state(), selfTest.phase()) == ota_core::RunAction::RESTART) {
    rebootInto = o.version;
    return 0;
  }
  return status == "VERIFIED" || status == "UP_TO_DATE" ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string rebootInto;
  int code = runBoot(argc, argv, rebootInto);
  if (rebootInto.empty()) return code;
  reboot(rebootArgs(argc, argv, rebootInto.c_str()));
  return 1;
}
