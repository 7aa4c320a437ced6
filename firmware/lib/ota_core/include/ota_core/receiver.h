// ota_core/receiver.h: the receiver state machine of protocol §8 (one transfer at a time).
//
// Drive it with three entries, all from ONE task/thread:
//   start()              "update wanted": publishes a REQUEST (with a resume point when stored)
//   onMessage(msg)       every complete message that arrived on the data, error or offer topic
//                        (an OFFER that applies starts a random delay, then the REQUEST: §8.1)
//   tick(nowMs)          periodically (every <= kAckFlushDelayMs): timeouts and delayed ACKs
// Transitions are listed in one table in receiver.cpp (kTransitions). The receiver owns no heap:
// every buffer is a member sized from limits.h; sizeof(Receiver) is the transfer's RAM.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ota_core/assembler.h"
#include "ota_core/codec.h"
#include "ota_core/crypto.h"
#include "ota_core/http_download.h"
#include "ota_core/limits.h"
#include "ota_core/platform.h"

namespace ota_core {

/// Longest topic prefix `{p}` this receiver accepts.
constexpr size_t kMaxPrefixBytes = 64;
/// Room for the receiver's own topics: `{p}/dev/{id}/status` and shorter.
constexpr size_t kMaxOwnTopicBytes = kMaxPrefixBytes + 5 + kMaxDeviceIdBytes + 8;
/// Room for a shared image topic `{p}/img/{sha16}/{streamId}` and its NUL (protocol §11).
constexpr size_t kMaxSharedTopicBytes = kMaxPrefixBytes + 5 + 16 + 1 + 10 + 1;

/// Receiver states (protocol §8). BACKING_OFF waits `retryAfterMs` (BUSY, TRANSFER_ABORTED,
/// UNKNOWN_TRANSFER) before asking again; VERIFIED and FAILED end an attempt; OFFER_DELAY waits
/// the random delay an OFFER asks for before the REQUEST (§8.1).
enum class State : uint8_t { IDLE, REQUESTED, BACKING_OFF, RECEIVING, VERIFIED, FAILED, OFFER_DELAY };
const char* toString(State state);

/// A source of uniformly random 32-bit numbers (esp_random on the ESP32); `context` is the
/// config's randomContext.
using RandomSource = uint32_t (*)(void* context);

/// What the receiver is told at construction. Strings must outlive the receiver.
struct ReceiverConfig {
  const char* prefix = "ota";
  const char* deviceId = "";
  const char* product = "";
  const char* currentVersion = "";
  /// Empty or "latest" = newest version of `product`.
  const char* wantedVersion = "";
  /// Preferred chunk size and window sent in the REQUEST (0 = sender's default).
  uint32_t chunkSize = kDefaultChunkBytes;
  uint16_t window = kDefaultWindow;
  /// Largest chunk payload the caller's reassembly buffer holds; bigger grants are refused.
  uint32_t maxChunkBytes = kDefaultChunkBytes;
  /// MQTT 5: Response Topic and Correlation Data travel as properties and correlation is checked
  /// on every data message. MQTT 3.1.1: they travel in the REQUEST body (protocol §3).
  bool mqtt5 = true;
  /// Which MANIFEST kinds this device installs.
  bool acceptEsp32App = true;
  bool acceptGenericFile = false;
  /// When asking for the newest version, decline (STATUS ABORTED, Outcome::upToDate) a fresh
  /// MANIFEST for the version already running. The sender answers UP_TO_DATE instead of such a
  /// MANIFEST (protocol §5.1); this guards against one that does not.
  bool declineCurrentVersion = true;
  /// When set and holding a key, unsigned images and bad signatures are SIGNATURE_INVALID.
  const SignatureVerifier* verifier = nullptr;
  /// Refuse unsigned images even when no key could be loaded (a device built to require
  /// signatures whose key is broken must not fall back to accepting anything).
  bool requireSignature = false;
  /// Ask for the shared image stream (REQUEST flag SHARED, protocol §11.4); sent only under MQTT 5,
  /// and useful only when the Publisher implements subscribe().
  bool shared = false;
  /// Draws the delay after an OFFER (§8.1): `(random × (jitterMs + 1)) >> 32` ms. Null: a
  /// xorshift generator seeded from the device id and the clock (spreads a fleet, not secret).
  RandomSource random = nullptr;
  void* randomContext = nullptr;
  /// Downloads the image of a MANIFEST with a url (protocol §7.3, §8.8). Null: this device
  /// cannot, and refuses such a MANIFEST with STATUS ABORTED.
  HttpDownloader* httpDownloader = nullptr;
  /// Ask for an HTTP download (REQUEST flag HTTP); only with an httpDownloader.
  bool askHttp = false;
};

/// Counters for logs, the host CLI's progress lines and the tests.
struct ReceiverStats {
  uint32_t requests = 0;
  uint32_t chunksWritten = 0;
  uint32_t bytesWritten = 0;     ///< bytes written to the sink in this session
  uint32_t duplicates = 0;
  uint32_t crcErrors = 0;
  uint32_t gaps = 0;
  uint32_t badChunks = 0;
  uint32_t flashFailures = 0;
  uint32_t acksSent = 0;
  uint32_t nacksSent = 0;
  uint32_t ignored = 0;          ///< messages of another transfer / correlation
  uint32_t offersTaken = 0;      ///< OFFERs that started an offer delay (§8.1)
  uint32_t offersIgnored = 0;    ///< OFFERs not applying, undecodable, or heard while busy
  uint32_t resumedFrom = 0;      ///< startOffset of the last MANIFEST that continued an image
  uint32_t rehashedBytes = 0;
  uint32_t sharedReceived = 0;   ///< messages on the shared image topic (§11.4), used or not
  uint32_t sharedWritten = 0;    ///< shared CHUNKs written
  uint32_t sharedRefused = 0;    ///< MANIFESTs whose shared topic was not their image's: unicast
  uint32_t sharedRejoined = 0;   ///< shared topic subscribed again after a session was lost
  uint32_t sharedLapsed = 0;     ///< ... or not (the subscription failed): unicast from then on
};

/// How the last transfer ended (valid in VERIFIED and FAILED).
struct Outcome {
  /// STATUS sent; ABORTED also for local give-ups that had no transfer to report on.
  StatusCode status = StatusCode::ABORTED;
  /// Set when the failure was an ERROR from the sender rather than a STATUS we sent.
  bool senderError = false;
  /// Nothing to do: the sender answered UP_TO_DATE, or offered the version already running
  /// (see ReceiverConfig::declineCurrentVersion). The state is FAILED, but nothing failed.
  bool upToDate = false;
  /// No sender answered kMaxUnansweredRequests REQUESTs in a row (protocol §8).
  bool noSender = false;
  ErrorCode error = ErrorCode::INTERNAL_ERROR;
  const char* detail = "";
  uint8_t sha256[kSha256Bytes] = {};
  /// Version named by the MANIFEST (empty before one arrived).
  char version[kMaxVersionBytes + 1] = {};
  uint32_t size = 0;
};

/// The protocol §8 receiver.
class Receiver {
 public:
  Receiver(const ReceiverConfig& config, FlashSink& sink, Publisher& publisher, StateStore& store,
           Clock& clock);

  /// False when the configuration breaks a protocol rule (device id, prefix).
  bool configValid() const { return configValid_; }
  /// "Update wanted": from IDLE or FAILED, publishes a REQUEST.
  void start();
  /// A complete message from the data, error, offer or shared image topic.
  void onMessage(const InboundMessage& message);
  /// Timeouts (request, idle, back-off) and delayed acknowledgements.
  void tick(uint32_t nowMs);
  /// Runs the HTTP download a URL MANIFEST asked for, to its end, in the calling task, and acts
  /// on its result (STATUS, or a REQUEST for a fresh URL). False when none is pending.
  bool runPendingHttpDownload();

  State state() const { return state_; }
  const Outcome& outcome() const { return outcome_; }
  const ReceiverStats& stats() const { return stats_; }

  /// The topics the platform subscribes to (data, error, offer) and publishes to (request,
  /// status).
  const char* requestTopic() const { return reqTopic_; }
  const char* dataTopic() const { return dataTopic_; }
  const char* errorTopic() const { return errorTopic_; }
  const char* offerTopic() const { return offerTopic_; }
  const char* statusTopic() const { return statusTopic_; }
  /// The shared image topic subscribed to for the transfer (§11.4); empty when none.
  const char* sharedTopic() const { return sharedTopic_; }
  /// The broker kept no session for a new connection (link_session.h): subscribes the transfer's
  /// shared image topic again (§11.4), or, when that fails, goes on by unicast alone (§11.3).
  /// Receiver task only, like every subscription of the shared topic.
  void onSessionLost();

 private:
  enum class Event : uint8_t {
    UPDATE_WANTED,
    MANIFEST,
    ERROR,
    CHUNK,
    TIMEOUT,
    OFFER,
    HTTP_DONE,
    SHARED_CHUNK
  };
  using Handler = State (Receiver::*)();
  struct Transition {
    State state;
    Event event;
    Handler handler;
  };
  static const Transition kTransitions[];

  void dispatch(Event event);
  void enter(State next);
  // Handlers: each returns the next state (the table says which ones it may return).
  State sendRequest();
  State acceptManifest();
  State onRequestError();
  State onChunk();
  State onTransferError();
  State reRequest();
  State startOfferDelay();
  State acceptUrlManifest();
  State onHttpDone();
  State onSharedChunk();

  State fail(StatusCode code, const char* detail);
  State finishImage();
  /// A verified image: forget the resume point, switch the boot slot, then report VERIFIED.
  State activateVerified();
  bool rehash(uint32_t upTo);
  void sendAck(NackReason nack);
  void sendStatus(StatusCode code, const char* detail);
  void saveResumePoint();
  bool correlationMatches(const InboundMessage& m) const;
  void onOffer(const InboundMessage& m);
  void onSharedMessage(const InboundMessage& m);
  void joinStream(const Manifest& m);
  void leaveStream();
  uint32_t nextRandom();
  void abortWrite();

  ReceiverConfig config_;
  FlashSink& sink_;
  Publisher& publisher_;
  StateStore& store_;
  Clock& clock_;
  bool configValid_ = false;

  State state_ = State::IDLE;
  uint32_t deadlineMs_ = 0;
  bool deadlineArmed_ = false;
  uint32_t backoffMs_ = 0;
  /// The wait of OFFER_DELAY, drawn when the OFFER was taken.
  uint32_t offerDelayMs_ = 0;
  /// The last attempt failed (FAILED, not up to date) at failedAtMs_: an OFFER waits until
  /// kRetryAfterFailureMs after it (§8.7).
  bool attemptFailed_ = false;
  uint32_t failedAtMs_ = 0;
  /// State of the fallback xorshift generator (ReceiverConfig::random unset).
  uint32_t randomState_ = 0;
  /// REQUESTs sent since the last answer (MANIFEST, ERROR or CHUNK of ours).
  uint32_t unanswered_ = 0;

  // Current request.
  uint8_t correlation_[kCorrelationBytes] = {};
  uint32_t requestCounter_ = 0;

  // Current transfer (copied out of the MANIFEST: the reassembly buffer is reused).
  uint32_t transferId_ = 0;
  uint8_t sha256_[kSha256Bytes] = {};
  uint32_t size_ = 0;
  uint32_t chunkSize_ = 0;
  uint32_t chunkCount_ = 0;
  uint16_t window_ = 1;
  ImageKind kind_ = ImageKind::ESP32_APP;
  char version_[kMaxVersionBytes + 1] = {};
  char ackTopic_[kMaxTopicBytes + 1] = {};

  // Progress.
  uint32_t nextIndex_ = 0;
  /// In-order chunks written since the last ACK.
  uint32_t unacked_ = 0;
  /// A duplicate arrived since the last ACK: an ACK of nextIndex is owed (coalesced, §8).
  bool ackOwed_ = false;
  /// When the oldest chunk (or duplicate) the held-back ACK covers arrived.
  uint32_t ackOwedSinceMs_ = 0;
  /// nextIndex_ when the last NACK went out: a GAP is NACKed once per nextIndex (§8).
  uint32_t nackedFor_ = UINT32_MAX;
  uint32_t flashFailuresInARow_ = 0;
  bool sinkOpen_ = false;
  Sha256 hash_;
  ResumePoint resume_;
  bool haveResume_ = false;

  // The message being handled (set by onMessage for the handlers).
  Manifest manifest_;
  ErrorMessage error_;
  Chunk chunk_;
  Offer offer_;
  // The HTTP download of a URL MANIFEST (§8.8): asked for, then its result.
  HttpJob httpJob_;
  bool httpPending_ = false;
  HttpResult httpResult_;
  /// Fetches in a row without a byte of progress when the last URL was refused (§8.8): the
  /// next download counts on from here.
  uint32_t httpRefusals_ = 0;
  bool chunkDecoded_ = false;
  uint32_t badChunkTransferId_ = 0;

  Outcome outcome_;
  ReceiverStats stats_;

  char reqTopic_[kMaxOwnTopicBytes] = {};
  char dataTopic_[kMaxOwnTopicBytes] = {};
  char errorTopic_[kMaxOwnTopicBytes] = {};
  char offerTopic_[kMaxOwnTopicBytes] = {};
  char statusTopic_[kMaxOwnTopicBytes] = {};
  /// The shared image topic of the transfer and its stream id (§11.4); empty / 0 when none.
  char sharedTopic_[kMaxSharedTopicBytes] = {};
  uint32_t streamId_ = 0;
  /// Outcome::detail text that names a topic (no heap: formatted here).
  char detail_[kMaxOwnTopicBytes + 48] = {};
  uint8_t txBuffer_[kMaxRequestBytes > kMaxStatusBytes ? kMaxRequestBytes : kMaxStatusBytes];
  uint8_t rehashBuffer_[kRehashBlockBytes];
};

/// Encodes a STATUS for a boot outcome (transferId 0) into `out`; used by the platform after a
/// reboot (BOOTED / ROLLED_BACK on `{p}/dev/{id}/status`). Returns its size or 0.
size_t encodeBootStatus(StatusCode code, const uint8_t sha256[kSha256Bytes], const char* version,
                        const char* detail, uint8_t* out, size_t capacity);

}  // namespace ota_core
