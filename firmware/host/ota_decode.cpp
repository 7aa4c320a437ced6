// ota-decode: decodes protocol messages with the firmware core's codec and prints one verdict per
// input line, so that another implementation can be compared with it byte for byte (the
// differential test tests/codec_differential_test.ts feeds it the same messages as the
// TypeScript codec).
//   input line:  <topic kind> <hex>     topic kind: req | data | ack | status | error | offer | img
//   output line: ok <MESSAGE TYPE>  |  error <DECODE ERROR>  |  bad-input <reason>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "ota_core/codec.h"
#include "ota_core/topics.h"

using namespace ota_core;

namespace {

bool parseKind(const std::string& name, TopicKind& kind) {
  for (TopicKind k : {TopicKind::REQUEST, TopicKind::DATA, TopicKind::ACK, TopicKind::STATUS,
                      TopicKind::ERROR, TopicKind::OFFER, TopicKind::IMAGE}) {
    if (name == toString(k)) {
      kind = k;
      return true;
    }
  }
  return false;
}

int nibble(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool parseHex(const std::string& hex, std::vector<uint8_t>& out) {
  if (hex.size() % 2 != 0) return false;
  out.resize(hex.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    int hi = nibble(hex[2 * i]);
    int lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

const char* typeName(MessageType type) {
  switch (type) {
    case MessageType::REQUEST: return "REQUEST";
    case MessageType::MANIFEST: return "MANIFEST";
    case MessageType::ERROR: return "ERROR";
    case MessageType::CHUNK: return "CHUNK";
    case MessageType::ACK: return "ACK";
    case MessageType::STATUS: return "STATUS";
    case MessageType::OFFER: return "OFFER";
  }
  return "UNKNOWN";
}

/// The codec's verdict on one message received on a topic of `kind`.
DecodeError decodeOn(TopicKind kind, const std::vector<uint8_t>& bytes, MessageType& type) {
  const uint8_t* p = bytes.data();
  size_t n = bytes.size();
  DecodeError e = peekTypeOn(kind, p, n, type);
  if (e != DecodeError::NONE) return e;
  switch (type) {
    case MessageType::REQUEST: { Request m; return decodeRequest(p, n, m); }
    case MessageType::MANIFEST: { Manifest m; return decodeManifest(p, n, m); }
    case MessageType::ERROR: { ErrorMessage m; return decodeError(p, n, m); }
    case MessageType::CHUNK: { Chunk m; return decodeChunk(p, n, m); }
    case MessageType::ACK: { Ack m; return decodeAck(p, n, m); }
    case MessageType::STATUS: { Status m; return decodeStatus(p, n, m); }
    case MessageType::OFFER: { Offer m; return decodeOffer(p, n, m); }
  }
  return DecodeError::UNEXPECTED_TYPE;
}

}  // namespace

int main() {
  std::ios::sync_with_stdio(false);
  std::string line;
  std::string out;
  std::vector<uint8_t> bytes;
  while (std::getline(std::cin, line)) {
    size_t space = line.find(' ');
    TopicKind kind{};
    if (space == std::string::npos || !parseKind(line.substr(0, space), kind)) {
      out += "bad-input topic kind\n";
      continue;
    }
    if (!parseHex(line.substr(space + 1), bytes)) {
      out += "bad-input hex\n";
      continue;
    }
    MessageType type{};
    DecodeError e = decodeOn(kind, bytes, type);
    out += e == DecodeError::NONE ? std::string("ok ") + typeName(type)
                                  : std::string("error ") + toString(e);
    out += '\n';
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}
