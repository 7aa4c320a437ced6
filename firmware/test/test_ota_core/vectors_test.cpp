// vectors_test.cpp: every golden vector of tests/vectors/*.json (read at test time, path from
// OTA_VECTORS_DIR) decodes to exactly its fields and encodes back to exactly its bytes, or is
// refused with exactly its decode error. One test case per vector.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "json_mini.h"
#include "ota_core/codec.h"
#include "ota_core/crc32.h"

using namespace ota_core;
using json_mini::hex;
using json_mini::toHex;
using json_mini::Value;

namespace {

struct VectorCase {
  std::string file;
  size_t index;
  std::string name;
};

/// Lets gtest print a case by name instead of as raw bytes.
void PrintTo(const VectorCase& c, std::ostream* os) { *os << c.name; }

std::vector<VectorCase> allCases() {
  std::vector<VectorCase> cases;
  for (const char* file : {"request", "manifest", "error", "chunk", "ack", "status", "offer"}) {
    Value doc = json_mini::parseFile(std::string(OTA_VECTORS_DIR) + "/" + file + ".json");
    const Value& vs = doc["vectors"];
    for (size_t i = 0; i < vs.array.size(); ++i) {
      std::string name = std::string(file) + "_" + std::to_string(i) + "_";
      for (char c : vs.array[i]["name"].string) name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
      cases.push_back({file, i, name});
    }
  }
  return cases;
}

std::vector<uint8_t> messageBytes(const Value& v) {
  if (v.has("hex")) return hex(v["hex"].string);
  std::vector<uint8_t> out = hex(v["hexHeader"].string);
  out.insert(out.end(), v["payloadFill"]["count"].u64(),
             static_cast<uint8_t>(v["payloadFill"]["byte"].u64()));
  return out;
}

std::string str(Bytes b) { return std::string(reinterpret_cast<const char*>(b.data), b.size); }
std::string hexOf(Bytes b) { return toHex(b.data, b.size); }
Bytes view(const std::string& s) { return Bytes{reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }
Bytes view(const std::vector<uint8_t>& v) { return Bytes{v.data(), v.size()}; }

DecodeError decodeAny(const std::string& file, const std::vector<uint8_t>& b) {
  const uint8_t* p = b.data();
  size_t n = b.size();
  if (file == "request") { Request m; return decodeRequest(p, n, m); }
  if (file == "manifest") { Manifest m; return decodeManifest(p, n, m); }
  if (file == "error") { ErrorMessage m; return decodeError(p, n, m); }
  if (file == "chunk") { Chunk m; return decodeChunk(p, n, m); }
  if (file == "ack") { Ack m; return decodeAck(p, n, m); }
  if (file == "offer") { Offer m; return decodeOffer(p, n, m); }
  Status m;
  return decodeStatus(p, n, m);
}

/// Decodes `bytes` as `file`, compares with `f`, re-encodes from `f` and returns the encoding.
std::vector<uint8_t> roundTrip(const std::string& file, const std::vector<uint8_t>& bytes,
                               const Value& f) {
  std::vector<uint8_t> out(kMaxChunkMessageBytes);
  size_t n = 0;
  // Storage for views the encoder reads from: must outlive the encode call.
  std::vector<uint8_t> b1, b2;
  if (file == "request") {
    Request m;
    EXPECT_EQ(decodeRequest(bytes.data(), bytes.size(), m), DecodeError::NONE);
    EXPECT_EQ(m.chunkSize, f["chunkSize"].u64());
    EXPECT_EQ(m.window, f["window"].u64());
    EXPECT_EQ(str(m.deviceId), f["deviceId"].string);
    EXPECT_EQ(str(m.product), f["product"].string);
    EXPECT_EQ(str(m.currentVersion), f["currentVersion"].string);
    EXPECT_EQ(str(m.wantedVersion), f["wantedVersion"].string);
    EXPECT_EQ(str(m.responseTopic), f["responseTopic"].string);
    EXPECT_EQ(hexOf(m.correlationData), f["correlationData"].string);
    EXPECT_EQ(m.hasResume, !f["resume"].isNull());
    EXPECT_EQ(m.wantsHttp, f.has("http") && f["http"].boolean);
    if (m.hasResume) {
      EXPECT_EQ(toHex(m.resumeSha256, 32), f["resume"]["sha256"].string);
      EXPECT_EQ(m.resumeOffset, f["resume"]["offset"].u64());
    }
    EXPECT_EQ(m.shared, f.has("shared") && f["shared"].boolean);
    Request e;
    e.chunkSize = static_cast<uint32_t>(f["chunkSize"].u64());
    e.window = static_cast<uint16_t>(f["window"].u64());
    e.deviceId = view(f["deviceId"].string);
    e.product = view(f["product"].string);
    e.currentVersion = view(f["currentVersion"].string);
    e.wantedVersion = view(f["wantedVersion"].string);
    e.responseTopic = view(f["responseTopic"].string);
    b1 = hex(f["correlationData"].string);
    e.correlationData = view(b1);
    e.wantsHttp = f.has("http") && f["http"].boolean;
    if (!f["resume"].isNull()) {
      e.hasResume = true;
      b2 = hex(f["resume"]["sha256"].string);
      std::copy(b2.begin(), b2.end(), e.resumeSha256);
      e.resumeOffset = static_cast<uint32_t>(f["resume"]["offset"].u64());
    }
    e.shared = f.has("shared") && f["shared"].boolean;
    n = encodeRequest(e, out.data(), out.size());
  } else if (file == "manifest") {
    Manifest m;
    EXPECT_EQ(decodeManifest(bytes.data(), bytes.size(), m), DecodeError::NONE);
    EXPECT_EQ(m.transferId, f["transferId"].u64());
    EXPECT_EQ(toHex(m.sha256, 32), f["sha256"].string);
    EXPECT_EQ(m.size, f["size"].u64());
    EXPECT_EQ(m.chunkSize, f["chunkSize"].u64());
    EXPECT_EQ(m.chunkCount, f["chunkCount"].u64());
    EXPECT_EQ(m.startOffset, f["startOffset"].u64());
    EXPECT_EQ(m.window, f["window"].u64());
    EXPECT_EQ(static_cast<uint64_t>(m.kind), f["kind"].u64());
    EXPECT_EQ(str(m.name), f["name"].string);
    EXPECT_EQ(str(m.product), f["product"].string);
    EXPECT_EQ(str(m.version), f["version"].string);
    EXPECT_EQ(str(m.ackTopic), f["ackTopic"].string);
    EXPECT_EQ(hexOf(m.signature), f["signature"].string);
    EXPECT_EQ(m.hasUrl, f.has("url"));
    if (f.has("url")) {
      EXPECT_EQ(str(m.url), f["url"].string);
    }
    EXPECT_EQ(m.shared, f.has("shared"));
    if (f.has("shared")) {
      EXPECT_EQ(m.streamId, f["shared"]["streamId"].u64());
      EXPECT_EQ(str(m.sharedTopic), f["shared"]["topic"].string);
    }
    Manifest e;
    e.transferId = static_cast<uint32_t>(f["transferId"].u64());
    b1 = hex(f["sha256"].string);
    std::copy(b1.begin(), b1.end(), e.sha256);
    e.size = static_cast<uint32_t>(f["size"].u64());
    e.chunkSize = static_cast<uint32_t>(f["chunkSize"].u64());
    e.chunkCount = static_cast<uint32_t>(f["chunkCount"].u64());
    e.startOffset = static_cast<uint32_t>(f["startOffset"].u64());
    e.window = static_cast<uint16_t>(f["window"].u64());
    e.kind = static_cast<ImageKind>(f["kind"].u64());
    e.name = view(f["name"].string);
    e.product = view(f["product"].string);
    e.version = view(f["version"].string);
    e.ackTopic = view(f["ackTopic"].string);
    b2 = hex(f["signature"].string);
    e.signature = view(b2);
    std::string url = f.has("url") ? f["url"].string : std::string();
    e.hasUrl = f.has("url");
    e.url = view(url);
    if (f.has("shared")) {
      e.shared = true;
      e.streamId = static_cast<uint32_t>(f["shared"]["streamId"].u64());
      e.sharedTopic = view(f["shared"]["topic"].string);
    }
    n = encodeManifest(e, out.data(), out.size());
  } else if (file == "error") {
    ErrorMessage m;
    EXPECT_EQ(decodeError(bytes.data(), bytes.size(), m), DecodeError::NONE);
    EXPECT_EQ(static_cast<uint64_t>(m.code), f["code"].u64());
    EXPECT_EQ(m.transferId, f["transferId"].u64());
    EXPECT_EQ(m.retryAfterMs, f["retryAfterMs"].u64());
    EXPECT_EQ(str(m.message), f["message"].string);
    ErrorMessage e;
    e.code = static_cast<ErrorCode>(f["code"].u64());
    e.transferId = static_cast<uint32_t>(f["transferId"].u64());
    e.retryAfterMs = static_cast<uint32_t>(f["retryAfterMs"].u64());
    e.message = view(f["message"].string);
    n = encodeError(e, out.data(), out.size());
  } else if (file == "chunk") {
    Chunk m;
    EXPECT_EQ(decodeChunk(bytes.data(), bytes.size(), m), DecodeError::NONE);
    EXPECT_EQ(m.transferId, f["transferId"].u64());
    EXPECT_EQ(m.index, f["index"].u64());
    EXPECT_EQ(m.offset, f["offset"].u64());
    EXPECT_EQ(m.payload.size, f["length"].u64());
    EXPECT_EQ(m.crc32, f["crc32"].u64());
    EXPECT_EQ(hexOf(m.payload), f["payload"].string);
    Chunk e;
    e.transferId = static_cast<uint32_t>(f["transferId"].u64());
    e.index = static_cast<uint32_t>(f["index"].u64());
    e.offset = static_cast<uint32_t>(f["offset"].u64());
    e.crc32 = static_cast<uint32_t>(f["crc32"].u64());
    b1 = hex(f["payload"].string);
    e.payload = view(b1);
    n = encodeChunk(e, out.data(), out.size());
  } else if (file == "ack") {
    Ack m;
    EXPECT_EQ(decodeAck(bytes.data(), bytes.size(), m), DecodeError::NONE);
    EXPECT_EQ(m.transferId, f["transferId"].u64());
    EXPECT_EQ(m.nextIndex, f["nextIndex"].u64());
    EXPECT_EQ(static_cast<uint64_t>(m.nack), f["nack"].u64());
    Ack e;
    e.transferId = static_cast<uint32_t>(f["transferId"].u64());
    e.nextIndex = static_cast<uint32_t>(f["nextIndex"].u64());
    e.nack = static_cast<NackReason>(f["nack"].u64());
    n = encodeAck(e, out.data(), out.size());
  } else if (file == "offer") {
    Offer m;
    EXPECT_EQ(decodeOffer(bytes.data(), bytes.size(), m), DecodeError::NONE);
    EXPECT_EQ(m.jitterMs, f["jitterMs"].u64());
    EXPECT_EQ(toHex(m.sha256, 32), f["sha256"].string);
    EXPECT_EQ(m.size, f["size"].u64());
    EXPECT_EQ(static_cast<uint64_t>(m.kind), f["kind"].u64());
    EXPECT_EQ(str(m.rolloutId), f["rolloutId"].string);
    EXPECT_EQ(str(m.product), f["product"].string);
    EXPECT_EQ(str(m.version), f["version"].string);
    Offer e;
    e.jitterMs = static_cast<uint32_t>(f["jitterMs"].u64());
    b1 = hex(f["sha256"].string);
    std::copy(b1.begin(), b1.end(), e.sha256);
    e.size = static_cast<uint32_t>(f["size"].u64());
    e.kind = static_cast<ImageKind>(f["kind"].u64());
    e.rolloutId = view(f["rolloutId"].string);
    e.product = view(f["product"].string);
    e.version = view(f["version"].string);
    n = encodeOffer(e, out.data(), out.size());
  } else {
    Status m;
    EXPECT_EQ(decodeStatus(bytes.data(), bytes.size(), m), DecodeError::NONE);
    EXPECT_EQ(m.transferId, f["transferId"].u64());
    EXPECT_EQ(static_cast<uint64_t>(m.status), f["status"].u64());
    EXPECT_EQ(toHex(m.sha256, 32), f["sha256"].string);
    EXPECT_EQ(str(m.version), f["version"].string);
    EXPECT_EQ(str(m.detail), f["detail"].string);
    Status e;
    e.transferId = static_cast<uint32_t>(f["transferId"].u64());
    e.status = static_cast<StatusCode>(f["status"].u64());
    b1 = hex(f["sha256"].string);
    std::copy(b1.begin(), b1.end(), e.sha256);
    e.version = view(f["version"].string);
    e.detail = view(f["detail"].string);
    n = encodeStatus(e, out.data(), out.size());
  }
  out.resize(n);
  return out;
}

class GoldenVector : public ::testing::TestWithParam<VectorCase> {};

TEST_P(GoldenVector, DecodesAndEncodesByteForByteOrFailsWithItsError) {
  const VectorCase& c = GetParam();
  Value doc = json_mini::parseFile(std::string(OTA_VECTORS_DIR) + "/" + c.file + ".json");
  const Value& v = doc["vectors"].array[c.index];
  std::vector<uint8_t> bytes = messageBytes(v);
  if (v.has("error")) {
    EXPECT_STREQ(toString(decodeAny(c.file, bytes)), v["error"].string.c_str());
  } else {
    std::vector<uint8_t> encoded = roundTrip(c.file, bytes, v["fields"]);
    EXPECT_EQ(toHex(encoded.data(), encoded.size()), v["hex"].string);
  }
}

INSTANTIATE_TEST_SUITE_P(Vectors, GoldenVector, ::testing::ValuesIn(allCases()),
                         [](const ::testing::TestParamInfo<VectorCase>& info) { return info.param.name; });

TEST(Crc32, MatchesTheZlibCheckValueAndTheChunkVectors) {
  const char* check = "123456789";
  EXPECT_EQ(crc32(0, reinterpret_cast<const uint8_t*>(check), 9), 0xCBF43926u);
  // Incremental use equals one pass.
  uint32_t part = crc32(0, reinterpret_cast<const uint8_t*>(check), 4);
  EXPECT_EQ(crc32(part, reinterpret_cast<const uint8_t*>(check) + 4, 5), 0xCBF43926u);
  Value doc = json_mini::parseFile(std::string(OTA_VECTORS_DIR) + "/chunk.json");
  for (const Value& v : doc["vectors"].array) {
    if (!v.has("fields") || v["name"].string.find("wrong CRC") != std::string::npos) continue;
    std::vector<uint8_t> p = hex(v["fields"]["payload"].string);
    EXPECT_EQ(crc32(0, p.data(), p.size()), v["fields"]["crc32"].u64()) << v["name"].string;
  }
}

TEST(PeekTransferId, ReadsTheFieldOfEveryMessageTypeOrNothing) {
  Value doc = json_mini::parseFile(std::string(OTA_VECTORS_DIR) + "/transfer_id.json");
  for (const Value& v : doc["vectors"].array) {
    std::vector<uint8_t> b = hex(v["hex"].string);
    uint32_t id = 12345;
    bool ok = peekTransferId(b.data(), b.size(), id);
    EXPECT_EQ(ok, !v["transferId"].isNull()) << v["name"].string;
    uint64_t expected = ok ? v["transferId"].u64() : 12345u;
    EXPECT_EQ(id, expected) << v["name"].string;
  }
}

TEST(DecodeError, ToStringUsesTheProtocolNames) {
  EXPECT_STREQ(toString(DecodeError::TRUNCATED), "TRUNCATED");
  EXPECT_STREQ(toString(DecodeError::TRAILING_BYTES), "TRAILING_BYTES");
  EXPECT_STREQ(toString(DecodeError::BAD_MAGIC), "BAD_MAGIC");
  EXPECT_STREQ(toString(DecodeError::UNSUPPORTED_VERSION), "UNSUPPORTED_VERSION");
  EXPECT_STREQ(toString(DecodeError::UNEXPECTED_TYPE), "UNEXPECTED_TYPE");
  EXPECT_STREQ(toString(DecodeError::RESERVED_NOT_ZERO), "RESERVED_NOT_ZERO");
  EXPECT_STREQ(toString(DecodeError::BAD_STRING), "BAD_STRING");
  EXPECT_STREQ(toString(DecodeError::OUT_OF_RANGE), "OUT_OF_RANGE");
  EXPECT_STREQ(toString(DecodeError::CHUNK_TOO_LARGE), "CHUNK_TOO_LARGE");
  EXPECT_STREQ(toString(DecodeError::LENGTH_MISMATCH), "LENGTH_MISMATCH");
}

TEST(Utf8, RejectsOverlongSurrogatesNulAndTruncatedSequences) {
  auto ok = [](std::vector<uint8_t> v) { return isValidUtf8(Bytes{v.data(), v.size()}); };
  EXPECT_TRUE(ok({'a', 0xC3, 0xA9, 0xE2, 0x82, 0xAC, 0xF0, 0x9F, 0x98, 0x80}));
  EXPECT_FALSE(ok({0xC0, 0xAF}));        // overlong '/'
  EXPECT_FALSE(ok({0xED, 0xA0, 0x80}));  // surrogate
  EXPECT_FALSE(ok({'a', 0x00}));         // NUL
  EXPECT_FALSE(ok({0xE2, 0x82}));        // cut short
  EXPECT_FALSE(ok({0xF4, 0x90, 0x80, 0x80}));  // above U+10FFFF
}

TEST(Encoders, ReturnZeroWhenTheBufferIsTooSmall) {
  Ack a;
  uint8_t small[kAckBytes - 1];
  EXPECT_EQ(encodeAck(a, small, sizeof small), 0u);
}

TEST(Encoders, AnOfferAtEveryBoundFitsInMaxOfferBytesAndNoLess) {
  std::string id(kMaxDeviceIdBytes, 'r');
  std::string product(kMaxProductBytes, 'p');
  std::string version(kMaxVersionBytes, 'v');
  Offer o;
  o.size = 1;
  o.rolloutId = view(id);
  o.product = view(product);
  o.version = view(version);
  uint8_t buf[kMaxOfferBytes];
  EXPECT_EQ(encodeOffer(o, buf, sizeof buf), kMaxOfferBytes);
  EXPECT_EQ(encodeOffer(o, buf, sizeof buf - 1), 0u);
  Offer back;
  EXPECT_EQ(decodeOffer(buf, kMaxOfferBytes, back), DecodeError::NONE);
  EXPECT_EQ(str(back.rolloutId), id);
}

}  // namespace
