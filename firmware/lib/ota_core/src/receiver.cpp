// receiver.cpp: protocol §8 as a transition table. onMessage() decodes and filters (transfer id,
// correlation), dispatch() looks up (state, event) in kTransitions and runs the handler, whose
// return value is the next state; enter() arms the one deadline a state has. A (state, event)
// pair missing from the table is ignored, which is what §8 asks of stray and late messages.
#include "ota_core/receiver.h"

#include <cstdio>
#include <cstring>

#include "ota_core/crc32.h"
#include "ota_core/topics.h"

namespace ota_core {
namespace {

void copyString(char* dst, size_t cap, Bytes src) {
  size_t n = src.size < cap - 1 ? src.size : cap - 1;
  if (n != 0) std::memcpy(dst, src.data, n);
  dst[n] = '\0';
}

void copyString(char* dst, size_t cap, const char* src) { copyString(dst, cap, bytesOf(src)); }

bool isLatest(const char* wanted) { return wanted[0] == '\0' || std::strcmp(wanted, "latest") == 0; }

uint32_t ceilHalf(uint16_t window) { return (static_cast<uint32_t>(window) + 1) / 2; }

}  // namespace

const char* toString(State state) {
  switch (state) {
    case State::IDLE: return "IDLE";
    case State::REQUESTED: return "REQUESTED";
    case State::BACKING_OFF: return "BACKING_OFF";
    case State::RECEIVING: return "RECEIVING";
    case State::VERIFIED: return "VERIFIED";
    case State::FAILED: return "FAILED";
    case State::OFFER_DELAY: return "OFFER_DELAY";
  }
  return "UNKNOWN";
}

// The whole of protocol §8. Next states each handler may return are in the comment.
const Receiver::Transition Receiver::kTransitions[] = {
    // update wanted: REQUEST (with resume point when stored)         -> REQUESTED
    {State::IDLE, Event::UPDATE_WANTED, &Receiver::sendRequest},
    {State::FAILED, Event::UPDATE_WANTED, &Receiver::sendRequest},
    // MANIFEST with our correlation: check it, begin/resume the write -> RECEIVING / FAILED
    {State::REQUESTED, Event::MANIFEST, &Receiver::acceptManifest},
    // ERROR: BUSY waits retryAfterMs, UP_TO_DATE / anything else stop -> BACKING_OFF / FAILED
    {State::REQUESTED, Event::ERROR, &Receiver::onRequestError},
    // no answer within DEVICE_IDLE_TIMEOUT_MS: ask again, or give up  -> REQUESTED / FAILED
    {State::REQUESTED, Event::TIMEOUT, &Receiver::reRequest},
    // retryAfterMs elapsed                                            -> REQUESTED
    {State::BACKING_OFF, Event::TIMEOUT, &Receiver::sendRequest},
    // CHUNK: write in order, NACK, re-ACK duplicates, finish on last  -> RECEIVING/VERIFIED/FAILED
    {State::RECEIVING, Event::CHUNK, &Receiver::onChunk},
    // ERROR naming our transfer: TRANSFER_ABORTED / UNKNOWN_TRANSFER
    // back off and resume, any other ends the transfer               -> BACKING_OFF / FAILED
    {State::RECEIVING, Event::ERROR, &Receiver::onTransferError},
    // DEVICE_IDLE_TIMEOUT_MS without data: re-request with resume     -> REQUESTED / FAILED
    {State::RECEIVING, Event::TIMEOUT, &Receiver::reRequest},
    // §8.7 OFFER that applies, no transfer running: draw a delay in [0, jitterMs] -> OFFER_DELAY
    // (no OFFER row in OFFER_DELAY: a repeat never postpones the REQUEST)
    {State::IDLE, Event::OFFER, &Receiver::startOfferDelay},
    {State::FAILED, Event::OFFER, &Receiver::startOfferDelay},
    // the delay passed, or update wanted first: REQUEST as from IDLE  -> REQUESTED
    {State::OFFER_DELAY, Event::TIMEOUT, &Receiver::sendRequest},
    {State::OFFER_DELAY, Event::UPDATE_WANTED, &Receiver::sendRequest},
    // §8.8 the HTTP download of a URL MANIFEST ended: STATUS, or REQUEST for a fresh URL
    //                                                                 -> VERIFIED / REQUESTED / FAILED
    {State::RECEIVING, Event::HTTP_DONE, &Receiver::onHttpDone},
    // §11.4 CHUNK of our stream on the shared topic, the one wanted next and fitting the MANIFEST
    // (onMessage drops every other one silently): handled as a unicast CHUNK -> RECEIVING/VERIFIED/FAILED
    {State::RECEIVING, Event::SHARED_CHUNK, &Receiver::onSharedChunk},
};

Receiver::Receiver(const ReceiverConfig& config, FlashSink& sink, Publisher& publisher,
                   StateStore& store, Clock& clock)
    : config_(config), sink_(sink), publisher_(publisher), store_(store), clock_(clock) {
  configValid_ = isValidPrefix(config_.prefix) && std::strlen(config_.prefix) <= kMaxPrefixBytes &&
                 isValidId(bytesOf(config_.deviceId)) && std::strlen(config_.product) >= 1 &&
                 std::strlen(config_.product) <= kMaxProductBytes &&
                 std::strlen(config_.currentVersion) <= kMaxVersionBytes &&
                 std::strlen(config_.wantedVersion) <= kMaxVersionBytes;
  const char* p = config_.prefix;
  const char* id = config_.deviceId;
  configValid_ = configValid_ &&
                 buildDeviceTopic(reqTopic_, sizeof reqTopic_, p, id, TopicKind::REQUEST) != 0 &&
                 buildDeviceTopic(dataTopic_, sizeof dataTopic_, p, id, TopicKind::DATA) != 0 &&
                 buildDeviceTopic(errorTopic_, sizeof errorTopic_, p, id, TopicKind::ERROR) != 0 &&
                 buildDeviceTopic(offerTopic_, sizeof offerTopic_, p, id, TopicKind::OFFER) != 0 &&
                 buildDeviceTopic(statusTopic_, sizeof statusTopic_, p, id, TopicKind::STATUS) != 0;
  haveResume_ = store_.load(resume_);
  // Fallback generator: FNV-1a of the device id mixed with the clock, never zero (xorshift).
  randomState_ = 2166136261u;
  for (const char* c = config_.deviceId; *c != '\0'; ++c) {
    randomState_ = (randomState_ ^ static_cast<uint8_t>(*c)) * 16777619u;
  }
  randomState_ ^= clock_.nowMs();
  if (randomState_ == 0) randomState_ = 0x9E3779B9u;
}

void Receiver::start() {
  if (!configValid_) {
    outcome_ = Outcome{};
    outcome_.detail = "invalid configuration (device id, prefix or product)";
    state_ = State::FAILED;
    return;
  }
  unanswered_ = 0;
  dispatch(Event::UPDATE_WANTED);
}

void Receiver::dispatch(Event event) {
  for (const Transition& t : kTransitions) {
    if (t.state == state_ && t.event == event) {
      enter((this->*t.handler)());
      return;
    }
  }
  ++stats_.ignored;
}

void Receiver::enter(State next) {
  state_ = next;
  if (next == State::VERIFIED || next == State::FAILED) leaveStream();  // §11.4
  uint32_t now = clock_.nowMs();
  if (next == State::FAILED) {
    attemptFailed_ = !outcome_.upToDate;
    failedAtMs_ = now;
  }
  if (next == State::VERIFIED || next == State::FAILED) httpRefusals_ = 0;  // the attempt's row
  switch (next) {
    case State::REQUESTED:
    case State::RECEIVING:
      deadlineArmed_ = true;
      deadlineMs_ = now + kDeviceIdleTimeoutMs;
      break;
    case State::BACKING_OFF:
      deadlineArmed_ = true;
      deadlineMs_ = now + backoffMs_;
      break;
    case State::OFFER_DELAY:
      deadlineArmed_ = true;
      deadlineMs_ = now + offerDelayMs_;
      break;
    default:
      deadlineArmed_ = false;
      break;
  }
}

void Receiver::tick(uint32_t nowMs) {
  if (state_ == State::RECEIVING && (unacked_ > 0 || ackOwed_) &&
      static_cast<uint32_t>(nowMs - ackOwedSinceMs_) >= kAckFlushDelayMs) {
    sendAck(NackReason::NONE);
  }
  if (deadlineArmed_ && static_cast<int32_t>(nowMs - deadlineMs_) >= 0) dispatch(Event::TIMEOUT);
}

bool Receiver::correlationMatches(const InboundMessage& m) const {
  if (!config_.mqtt5) return true;  // 3.1.1 has no properties: nothing to compare (§3)
  return !m.correlationTooLong && m.correlation.size == kCorrelationBytes &&
         std::memcmp(m.correlation.data, correlation_, kCorrelationBytes) == 0;
}

void Receiver::onMessage(const InboundMessage& m) {
  if (equals(m.topic, offerTopic_)) {
    onOffer(m);
    return;
  }
  if (sharedTopic_[0] != '\0' && equals(m.topic, sharedTopic_)) {
    onSharedMessage(m);
    return;
  }
  bool onData = equals(m.topic, dataTopic_);
  bool onError = equals(m.topic, errorTopic_);
  MessageType type{};
  // §2: the data topic carries MANIFEST, CHUNK and ERROR; the error topic only ERROR.
  if ((!onData && !onError) ||
      peekTypeOn(onData ? TopicKind::DATA : TopicKind::ERROR, m.payload.data, m.payload.size,
                 type) != DecodeError::NONE) {
    ++stats_.ignored;
    return;
  }
  // Protocol §8: a Correlation Data that is present but not ours marks another request's message.
  // A MANIFEST, and an ERROR answering a request, must carry ours (MQTT 5); a CHUNK may come
  // without it. The data topic and the error topic follow the same rules.
  if (config_.mqtt5 && m.correlation.size != 0 && !correlationMatches(m)) {
    ++stats_.ignored;
    return;
  }

  switch (type) {
    case MessageType::MANIFEST:
      if (decodeManifest(m.payload.data, m.payload.size, manifest_) != DecodeError::NONE ||
          !correlationMatches(m)) {
        ++stats_.ignored;
        return;
      }
      // The ack topic is the body's field (§8.4), also under MQTT 5.
      dispatch(Event::MANIFEST);
      return;
    case MessageType::ERROR: {
      if (decodeError(m.payload.data, m.payload.size, error_) != DecodeError::NONE) {
        ++stats_.ignored;
        return;
      }
      bool ours = state_ == State::REQUESTED ? correlationMatches(m)
                                              : error_.transferId == transferId_;
      if (!ours) {
        ++stats_.ignored;
        return;
      }
      dispatch(Event::ERROR);
      return;
    }
    case MessageType::CHUNK: {
      chunkDecoded_ = decodeChunk(m.payload.data, m.payload.size, chunk_) == DecodeError::NONE;
      uint32_t id = 0;
      if (chunkDecoded_) {
        id = chunk_.transferId;
      } else if (!peekTransferId(m.payload.data, m.payload.size, id)) {
        ++stats_.ignored;
        return;
      }
      if (state_ != State::RECEIVING || id != transferId_) {
        ++stats_.ignored;
        return;
      }
      dispatch(Event::CHUNK);
      return;
    }
    default:
      ++stats_.ignored;
      return;
  }
}

// §8.7: an OFFER applies when it decodes on the offer topic, names this product and a version
// other than the running one, and its image fits the slot and is of a kind this device installs.
// One that does not apply, or that arrives while a transfer runs (no row), is counted, never
// answered.
void Receiver::onOffer(const InboundMessage& m) {
  MessageType type{};
  if (peekTypeOn(TopicKind::OFFER, m.payload.data, m.payload.size, type) != DecodeError::NONE ||
      decodeOffer(m.payload.data, m.payload.size, offer_) != DecodeError::NONE ||
      !equals(offer_.product, config_.product) || equals(offer_.version, config_.currentVersion) ||
      offer_.size > sink_.capacity() ||
      (offer_.kind == ImageKind::ESP32_APP && !config_.acceptEsp32App) ||
      (offer_.kind == ImageKind::GENERIC_FILE && !config_.acceptGenericFile)) {
    ++stats_.offersIgnored;
    return;
  }
  uint32_t ignoredBefore = stats_.ignored;
  dispatch(Event::OFFER);
  if (stats_.ignored != ignoredBefore) {
    // No row: a transfer is running or ending, or a delay is already running.
    --stats_.ignored;
    ++stats_.offersIgnored;
  }
}

// §11.4: the shared topic carries only CHUNK. A CHUNK counts only in RECEIVING, of our stream, as
// the chunk wanted next and fitting the MANIFEST; anything else is dropped without an answer and
// without restarting the idle timer (no dispatch).
void Receiver::onSharedMessage(const InboundMessage& m) {
  ++stats_.sharedReceived;
  MessageType type{};
  if (state_ != State::RECEIVING ||
      peekTypeOn(TopicKind::IMAGE, m.payload.data, m.payload.size, type) != DecodeError::NONE ||
      decodeChunk(m.payload.data, m.payload.size, chunk_) != DecodeError::NONE) {
    return;
  }
  const Chunk& c = chunk_;
  uint32_t expectedLength =
      c.index + 1 == chunkCount_ ? size_ - c.index * chunkSize_ : chunkSize_;
  if (c.transferId != streamId_ || c.index != nextIndex_ || c.index >= chunkCount_ ||
      c.offset != c.index * chunkSize_ || c.payload.size != expectedLength) {
    return;
  }
  chunkDecoded_ = true;
  dispatch(Event::SHARED_CHUNK);
}

State Receiver::onSharedChunk() {
  uint32_t before = nextIndex_;
  State next = onChunk();
  if (nextIndex_ != before) ++stats_.sharedWritten;
  return next;
}

// §11.4: subscribe only to the topic of this image and stream under our own prefix, so a MANIFEST
// can never make the device subscribe outside `{p}/img/`.
void Receiver::joinStream(const Manifest& m) {
  leaveStream();
  if (!m.shared || !config_.shared) return;
  char expected[kMaxSharedTopicBytes];
  size_t n = buildSharedImageTopic(expected, sizeof expected, config_.prefix, m.sha256, m.streamId);
  if (n == 0 || !equals(m.sharedTopic, expected)) {
    ++stats_.sharedRefused;
    return;
  }
  if (!publisher_.subscribe(expected)) return;  // §11.3: unicast alone
  std::memcpy(sharedTopic_, expected, n + 1);
  streamId_ = m.streamId;
}

void Receiver::onSessionLost() {
  if (sharedTopic_[0] == '\0') return;
  if (publisher_.subscribe(sharedTopic_)) {
    ++stats_.sharedRejoined;
    return;
  }
  // §11.3: the device goes on without the stream; its transfer lapses and finishes by unicast.
  ++stats_.sharedLapsed;
  sharedTopic_[0] = '\0';
  streamId_ = 0;
}

void Receiver::leaveStream() {
  if (sharedTopic_[0] == '\0') return;
  publisher_.unsubscribe(sharedTopic_);
  sharedTopic_[0] = '\0';
  streamId_ = 0;
}

uint32_t Receiver::nextRandom() {
  if (config_.random != nullptr) return config_.random(config_.randomContext);
  uint32_t x = randomState_;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  randomState_ = x;
  return x;
}

// §8.7: a delay drawn in [0, jitterMs]; after a failed attempt it lasts at least until
// kRetryAfterFailureMs after the failure.
State Receiver::startOfferDelay() {
  uint64_t jitter = static_cast<uint64_t>(offer_.jitterMs) + 1;
  offerDelayMs_ = static_cast<uint32_t>((static_cast<uint64_t>(nextRandom()) * jitter) >> 32);
  if (state_ == State::FAILED && attemptFailed_) {
    uint32_t since = clock_.nowMs() - failedAtMs_;
    if (since < kRetryAfterFailureMs && kRetryAfterFailureMs - since > offerDelayMs_) {
      offerDelayMs_ = kRetryAfterFailureMs - since;
    }
  }
  unanswered_ = 0;
  ++stats_.offersTaken;
  return State::OFFER_DELAY;
}

State Receiver::sendRequest() {
  leaveStream();  // §11.4: a new exchange starts without the old stream
  ++unanswered_;
  ++requestCounter_;
  uint32_t now = clock_.nowMs();
  for (size_t i = 0; i < 4; ++i) {
    correlation_[i] = static_cast<uint8_t>(requestCounter_ >> (8 * i));
    correlation_[4 + i] = static_cast<uint8_t>(now >> (8 * i));
  }
  Request req;
  req.chunkSize = config_.chunkSize;
  req.window = config_.window;
  req.deviceId = bytesOf(config_.deviceId);
  req.product = bytesOf(config_.product);
  req.currentVersion = bytesOf(config_.currentVersion);
  req.wantedVersion = bytesOf(config_.wantedVersion);
  req.wantsHttp = config_.askHttp && config_.httpDownloader != nullptr;
  httpPending_ = false;
  Bytes corr{correlation_, kCorrelationBytes};
  req.shared = config_.shared && config_.mqtt5;  // §11.1: never under MQTT 3.1.1
  if (!config_.mqtt5) {
    req.responseTopic = bytesOf(dataTopic_);
    req.correlationData = corr;
  }
  if (sinkOpen_) {
    // Same boot, write handle still open: every byte below the write position is clean, so ask
    // for exactly that position and keep writing without a rehash. With nothing written yet
    // there is nothing to resume (§9): the REQUEST carries no resume point.
    if (nextIndex_ > 0) {
      req.hasResume = true;
      std::memcpy(req.resumeSha256, sha256_, kSha256Bytes);
      req.resumeOffset = nextIndex_ * chunkSize_;
    }
  } else if (haveResume_ && std::strcmp(resume_.product, config_.product) == 0 &&
             (isLatest(config_.wantedVersion) ||
              std::strcmp(resume_.version, config_.wantedVersion) == 0)) {
    // After a reboot the bytes after the last saved offset may be half-programmed: round down
    // to an erase sector so the next write starts on a freshly erased one.
    uint32_t offset = resume_.offset - resume_.offset % kFlashSectorBytes;
    if (offset > 0) {
      req.hasResume = true;
      std::memcpy(req.resumeSha256, resume_.sha256, kSha256Bytes);
      req.resumeOffset = offset;
    }
  }
  size_t n = encodeRequest(req, txBuffer_, sizeof txBuffer_);
  if (n != 0) {
    publisher_.publish(reqTopic_, txBuffer_, n, config_.mqtt5 ? dataTopic_ : nullptr,
                       config_.mqtt5 ? corr : Bytes{});
    ++stats_.requests;
  }
  return State::REQUESTED;
}

State Receiver::reRequest() {
  if (unanswered_ >= kMaxUnansweredRequests) {
    // Protocol §8.6: nobody answers. Say so, naming the request topic (the platform adds the
    // broker), instead of asking forever; the resume point stays for a later start().
    outcome_ = Outcome{};
    outcome_.status = StatusCode::ABORTED;
    outcome_.noSender = true;
    std::snprintf(detail_, sizeof detail_, "no sender answered %u requests on %s",
                  static_cast<unsigned>(unanswered_), reqTopic_);
    outcome_.detail = detail_;
    abortWrite();
    return State::FAILED;
  }
  return sendRequest();
}

void Receiver::abortWrite() {
  if (sinkOpen_) {
    sink_.abort();
    sinkOpen_ = false;
  }
}


State Receiver::acceptManifest() {
  const Manifest& m = manifest_;
  bool sameImage = std::memcmp(m.sha256, sha256_, kSha256Bytes) == 0;
  uint32_t writtenThisBoot = sinkOpen_ && sameImage ? nextIndex_ * chunkSize_ : 0;
  bool storedSame = haveResume_ && std::memcmp(m.sha256, resume_.sha256, kSha256Bytes) == 0;

  transferId_ = m.transferId;
  std::memcpy(sha256_, m.sha256, kSha256Bytes);
  size_ = m.size;
  chunkSize_ = m.chunkSize;
  chunkCount_ = m.chunkCount;
  window_ = m.window;
  kind_ = m.kind;
  copyString(version_, sizeof version_, m.version);
  copyString(ackTopic_, sizeof ackTopic_, m.ackTopic);
  outcome_ = Outcome{};
  std::memcpy(outcome_.sha256, sha256_, kSha256Bytes);
  outcome_.size = size_;
  copyString(outcome_.version, sizeof outcome_.version, version_);

  unanswered_ = 0;
  if (m.ackTopic.size > kMaxTopicBytes ||
      !isAckTopicOf(m.ackTopic, config_.prefix, config_.deviceId)) {
    // Protocol §8: nothing is published outside this device's namespace, not even a STATUS.
    ackTopic_[0] = '\0';
    abortWrite();
    outcome_.detail = "ack topic outside this device's namespace";
    return State::FAILED;
  }
  if (!equals(m.product, config_.product)) return fail(StatusCode::ABORTED, "product differs");
  if ((m.kind == ImageKind::ESP32_APP && !config_.acceptEsp32App) ||
      (m.kind == ImageKind::GENERIC_FILE && !config_.acceptGenericFile)) {
    return fail(StatusCode::IMAGE_INVALID, "image kind not accepted by this device");
  }
  if (m.size > sink_.capacity()) return fail(StatusCode::ABORTED, "image larger than the slot");
  if (m.chunkSize > config_.maxChunkBytes) {
    return fail(StatusCode::ABORTED, "granted chunk size exceeds the receive buffer");
  }
  if (m.startOffset == 0 && !isLatest(config_.wantedVersion) &&
      !equals(m.version, config_.wantedVersion)) {
    return fail(StatusCode::ABORTED, "version differs from the wanted one");
  }
  if (m.startOffset == 0 && config_.declineCurrentVersion && isLatest(config_.wantedVersion) &&
      equals(m.version, config_.currentVersion)) {
    outcome_.upToDate = true;
    return fail(StatusCode::ABORTED, "already running this version");
  }
  // The signature covers the manifest's sha256, and the image is later compared with that
  // sha256: checking it now refuses a forged image before a single flash sector is erased.
  bool needSignature =
      config_.requireSignature || (config_.verifier != nullptr && config_.verifier->hasKey());
  if (needSignature && (config_.verifier == nullptr ||
                        !config_.verifier->verify(m.sha256, m.signature.data, m.signature.size))) {
    return fail(StatusCode::SIGNATURE_INVALID,
                m.signature.size == 0 ? "image is not signed" : "signature does not verify");
  }
  if (m.hasUrl) return acceptUrlManifest();

  if (m.startOffset == 0) {
    if (sinkOpen_) sink_.abort();
    sinkOpen_ = false;
    SinkResult r = sink_.begin(m.size, m.kind);
    if (r != SinkResult::OK) return fail(StatusCode::FLASH_ERROR, "cannot open the update slot");
    sinkOpen_ = true;
    hash_.begin();
  } else if (writtenThisBoot != 0 && m.startOffset == writtenThisBoot) {
    stats_.resumedFrom = m.startOffset;  // same handle, same running hash: just continue
  } else {
    uint32_t available = writtenThisBoot != 0 ? writtenThisBoot : (storedSame ? resume_.offset : 0);
    if (m.startOffset > available) {
      return fail(StatusCode::ABORTED, "start offset beyond the bytes this device holds");
    }
    SinkResult r = sink_.resume(m.startOffset, m.size, m.kind);
    if (r != SinkResult::OK) return fail(StatusCode::FLASH_ERROR, "cannot resume the update slot");
    sinkOpen_ = true;
    if (!rehash(m.startOffset)) return fail(StatusCode::FLASH_ERROR, "cannot read back the slot");
    stats_.resumedFrom = m.startOffset;
  }
  nextIndex_ = m.startOffset / m.chunkSize;
  unacked_ = 0;
  ackOwed_ = false;
  nackedFor_ = UINT32_MAX;
  flashFailuresInARow_ = 0;
  saveResumePoint();
  joinStream(m);
  return State::RECEIVING;
}

State Receiver::acceptUrlManifest() {
  const Manifest& m = manifest_;
  if (config_.httpDownloader == nullptr) {
    return fail(StatusCode::ABORTED, "this device cannot download over HTTP");
  }
  UrlProblem problem = checkDownloadUrl(m.url);
  if (problem != UrlProblem::NONE) return fail(StatusCode::ABORTED, toString(problem));
  bool storedSame = haveResume_ && std::memcmp(m.sha256, resume_.sha256, kSha256Bytes) == 0;
  if (m.startOffset > (storedSame ? resume_.offset : 0)) {
    return fail(StatusCode::ABORTED, "start offset beyond the bytes this device holds");
  }
  // The platform's downloader writes the slot itself (esp_https_ota): close our own handle.
  abortWrite();
  httpJob_ = HttpJob{};
  std::memcpy(httpJob_.url, m.url.data, m.url.size);
  std::memcpy(httpJob_.sha256, m.sha256, kSha256Bytes);
  httpJob_.size = m.size;
  httpJob_.from = m.startOffset;
  httpJob_.kind = m.kind;
  httpJob_.failuresBefore = httpRefusals_;
  httpPending_ = true;
  stats_.resumedFrom = m.startOffset;
  return State::RECEIVING;
}

bool Receiver::runPendingHttpDownload() {
  if (!httpPending_ || state_ != State::RECEIVING || config_.httpDownloader == nullptr) {
    return false;
  }
  httpPending_ = false;
  HttpResumeKeeper keeper(store_, httpJob_, config_.product, version_);
  httpResult_ = config_.httpDownloader->download(httpJob_, keeper);
  stats_.bytesWritten += httpResult_.bytesWritten;
  // §8.8: a refused URL sends a REQUEST with the resume point of the bytes held, even when the
  // keeper's wear rule has not saved them yet.
  if (httpResult_.askAgain) keeper.flush(httpJob_.from + httpResult_.bytesWritten);
  dispatch(Event::HTTP_DONE);
  return true;
}

State Receiver::onHttpDone() {
  const HttpResult& r = httpResult_;
  if (r.askAgain) {
    // The URL is no longer good (an expired token): ask again from the bytes saved (§8.8),
    // unless fetches keep failing without progress (a clock that expires every token). The row
    // goes on across the REQUESTs; a downloader that does not count still moves it by one.
    uint32_t counted = r.bytesWritten > 0 ? 1 : httpRefusals_ + 1;
    httpRefusals_ = r.failuresInARow > counted ? r.failuresInARow : counted;
    if (httpRefusals_ >= kMaxHttpAttempts) {
      httpRefusals_ = 0;
      return fail(StatusCode::ABORTED, "the server refused every download URL");
    }
    haveResume_ = store_.load(resume_);
    return sendRequest();
  }
  httpRefusals_ = 0;
  if (r.status != StatusCode::VERIFIED) {
    // Bytes that failed verification, or a slot that cannot be written, are not worth resuming.
    if (r.status == StatusCode::HASH_MISMATCH || r.status == StatusCode::FLASH_ERROR ||
        r.status == StatusCode::IMAGE_INVALID) {
      store_.clear();
      haveResume_ = false;
    }
    return fail(r.status, r.detail);
  }
  // The downloader checked the SHA-256 before it said VERIFIED; the sink's activate() switches
  // the boot slot (again, when the downloader did) and records the boot for the self-test.
  return activateVerified();
}

bool Receiver::rehash(uint32_t upTo) {
  hash_.begin();
  for (uint32_t off = 0; off < upTo;) {
    size_t n = upTo - off < sizeof rehashBuffer_ ? upTo - off : sizeof rehashBuffer_;
    if (!sink_.read(off, rehashBuffer_, n)) return false;
    hash_.update(rehashBuffer_, n);
    off += static_cast<uint32_t>(n);
  }
  stats_.rehashedBytes += upTo;
  return true;
}

State Receiver::onRequestError() {
  unanswered_ = 0;
  if (error_.code == ErrorCode::BUSY) {
    backoffMs_ = error_.retryAfterMs;
    return State::BACKING_OFF;
  }
  if (error_.code == ErrorCode::UP_TO_DATE) {
    // Nothing to download (protocol §5.1): a terminal answer, not a failure of the device.
    outcome_ = Outcome{};
    outcome_.senderError = true;
    outcome_.upToDate = true;
    outcome_.error = error_.code;
    outcome_.detail = "already running the newest version";
    return State::FAILED;
  }
  if (error_.code == ErrorCode::OUT_OF_RANGE && haveResume_) {
    // Our resume point does not fit the image (§9): forget it so the next start() is fresh.
    store_.clear();
    haveResume_ = false;
  }
  abortWrite();  // a write left open by an earlier transfer of this attempt
  outcome_ = Outcome{};
  outcome_.senderError = true;
  outcome_.error = error_.code;
  outcome_.detail = toString(error_.code);
  return State::FAILED;
}

State Receiver::onTransferError() {
  unanswered_ = 0;
  unacked_ = 0;
  ackOwed_ = false;
  if (error_.code == ErrorCode::TRANSFER_ABORTED || error_.code == ErrorCode::UNKNOWN_TRANSFER) {
    // The sender closed or lost our transfer (gave up, restarted, shutting down). Keep the write
    // handle and ask again later with the resume point.
    backoffMs_ = error_.retryAfterMs != 0 ? error_.retryAfterMs : kAckTimeoutMs;
    return State::BACKING_OFF;
  }
  // Any other ERROR ends the transfer: the sender has closed it, so no STATUS answers it (§5.3);
  // the flash write is dropped and the boot slot never switched.
  abortWrite();
  outcome_.status = StatusCode::ABORTED;
  outcome_.senderError = true;
  outcome_.error = error_.code;
  outcome_.detail = toString(error_.code);
  return State::FAILED;
}

State Receiver::onChunk() {
  unanswered_ = 0;
  if (!chunkDecoded_) {
    ++stats_.badChunks;
    sendAck(NackReason::BAD_CHUNK);
    return State::RECEIVING;
  }
  const Chunk& c = chunk_;
  uint32_t expectedLength =
      c.index + 1 == chunkCount_ ? size_ - c.index * chunkSize_ : chunkSize_;
  if (c.index >= chunkCount_ || c.offset != c.index * chunkSize_ ||
      c.payload.size != expectedLength) {
    ++stats_.badChunks;
    sendAck(NackReason::BAD_CHUNK);
    return State::RECEIVING;
  }
  if (c.index < nextIndex_) {  // duplicate: tell the sender where we are, coalesced (§8)
    ++stats_.duplicates;
    if (unacked_ == 0 && !ackOwed_) ackOwedSinceMs_ = clock_.nowMs();
    ackOwed_ = true;
    return State::RECEIVING;
  }
  if (c.index > nextIndex_) {  // chunk nextIndex was lost: go-back-N, one NACK per nextIndex
    ++stats_.gaps;
    if (nackedFor_ != nextIndex_) sendAck(NackReason::GAP);
    return State::RECEIVING;
  }
  if (crc32(0, c.payload.data, c.payload.size) != c.crc32) {
    ++stats_.crcErrors;
    sendAck(NackReason::CRC_MISMATCH);
    return State::RECEIVING;
  }
  SinkResult r = sink_.write(c.payload.data, c.payload.size);
  if (r == SinkResult::IMAGE_INVALID) {
    return fail(StatusCode::IMAGE_INVALID, "image refused by the flash (bad header)");
  }
  if (r != SinkResult::OK) {
    ++stats_.flashFailures;
    if (++flashFailuresInARow_ >= kMaxFlashFailuresInARow) {
      return fail(StatusCode::FLASH_ERROR, "flash write failed 3 times in a row");
    }
    sendAck(NackReason::FLASH_WRITE_FAILED);
    return State::RECEIVING;
  }
  flashFailuresInARow_ = 0;
  hash_.update(c.payload.data, c.payload.size);
  ++nextIndex_;
  ++stats_.chunksWritten;
  stats_.bytesWritten += static_cast<uint32_t>(c.payload.size);
  saveResumePoint();
  if (unacked_ == 0 && !ackOwed_) ackOwedSinceMs_ = clock_.nowMs();
  ++unacked_;
  if (nextIndex_ == chunkCount_) {
    sendAck(NackReason::NONE);  // the last chunk is always acknowledged at once
    return finishImage();
  }
  if (unacked_ >= ceilHalf(window_)) sendAck(NackReason::NONE);
  return State::RECEIVING;
}

State Receiver::finishImage() {
  uint8_t digest[kSha256Bytes];
  hash_.finish(digest);
  if (std::memcmp(digest, sha256_, kSha256Bytes) != 0) {
    return fail(StatusCode::HASH_MISMATCH, "sha256 differs");
  }
  SinkResult r = sink_.finish();
  sinkOpen_ = false;  // esp_ota_end releases the handle whatever it returns
  if (r != SinkResult::OK) {
    return fail(r == SinkResult::IMAGE_INVALID ? StatusCode::IMAGE_INVALID : StatusCode::FLASH_ERROR,
                "image validation failed at the end of the write");
  }
  return activateVerified();
}

State Receiver::activateVerified() {
  store_.clear();
  haveResume_ = false;
  // Switch first, then report: VERIFIED promises "the device will boot it" (§5.3).
  if (!sink_.activate()) return fail(StatusCode::FLASH_ERROR, "cannot switch the boot slot");
  outcome_.status = StatusCode::VERIFIED;
  outcome_.detail = "";
  sendStatus(StatusCode::VERIFIED, "");
  return State::VERIFIED;
}

State Receiver::fail(StatusCode code, const char* detail) {
  outcome_.status = code;
  outcome_.detail = detail;
  sendStatus(code, detail);
  bool wasWriting = sinkOpen_;
  if (sinkOpen_) {
    sink_.abort();
    sinkOpen_ = false;
  }
  // Bytes that failed verification (or a slot we could not write) are not worth resuming.
  if (wasWriting || code == StatusCode::HASH_MISMATCH || code == StatusCode::FLASH_ERROR ||
      code == StatusCode::IMAGE_INVALID) {
    if (haveResume_ && std::memcmp(resume_.sha256, sha256_, kSha256Bytes) == 0) {
      store_.clear();
      haveResume_ = false;
    }
  }
  return State::FAILED;
}

void Receiver::sendAck(NackReason nack) {
  Ack ack;
  ack.transferId = transferId_;
  ack.nextIndex = nextIndex_;
  ack.nack = nack;
  uint8_t buf[kAckBytes];
  size_t n = encodeAck(ack, buf, sizeof buf);
  publisher_.publish(ackTopic_, buf, n, nullptr, Bytes{});
  unacked_ = 0;  // a NACK for nextIndex is cumulative too (§4.5)
  ackOwed_ = false;
  if (nack == NackReason::NONE) {
    ++stats_.acksSent;
  } else {
    ++stats_.nacksSent;
    nackedFor_ = nextIndex_;  // any NACK counts as the one NACK of this nextIndex (§8)
  }
}

void Receiver::sendStatus(StatusCode code, const char* detail) {
  Status st;
  st.transferId = transferId_;
  st.status = code;
  std::memcpy(st.sha256, sha256_, kSha256Bytes);
  st.version = bytesOf(version_);
  Bytes d = bytesOf(detail);
  if (d.size > kMaxStatusDetailBytes) d.size = kMaxStatusDetailBytes;
  st.detail = d;
  size_t n = encodeStatus(st, txBuffer_, sizeof txBuffer_);
  if (n != 0) publisher_.publish(ackTopic_, txBuffer_, n, nullptr, Bytes{});
}

void Receiver::saveResumePoint() {
  std::memcpy(resume_.sha256, sha256_, kSha256Bytes);
  resume_.offset = nextIndex_ * chunkSize_;
  resume_.size = size_;
  resume_.kind = kind_;
  copyString(resume_.product, sizeof resume_.product, config_.product);
  copyString(resume_.version, sizeof resume_.version, version_);
  haveResume_ = true;
  store_.save(resume_);
}

size_t encodeBootStatus(StatusCode code, const uint8_t sha256[kSha256Bytes], const char* version,
                        const char* detail, uint8_t* out, size_t capacity) {
  Status st;
  st.transferId = 0;
  st.status = code;
  std::memcpy(st.sha256, sha256, kSha256Bytes);
  st.version = bytesOf(version);
  st.detail = bytesOf(detail);
  return encodeStatus(st, out, capacity);
}

}  // namespace ota_core
