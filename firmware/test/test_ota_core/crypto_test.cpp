// crypto_test.cpp: SHA-256 against FIPS 180-2 values and ECDSA P-256 r||s verification.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "json_mini.h"
#include "ota_core/crypto.h"
#include "test_keys.h"

using namespace ota_core;

namespace {

std::string sha256Hex(const std::string& text, size_t split) {
  Sha256 h;
  h.begin();
  h.update(reinterpret_cast<const uint8_t*>(text.data()), split);
  h.update(reinterpret_cast<const uint8_t*>(text.data()) + split, text.size() - split);
  uint8_t d[32];
  h.finish(d);
  return json_mini::toHex(d, 32);
}

TEST(Sha256, MatchesKnownDigestsInOneOrSeveralUpdates) {
  EXPECT_EQ(sha256Hex("", 0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256Hex("abc", 1), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(SignatureVerifier, AcceptsAValidSignatureAndRefusesAlteredOnes) {
  TestKey key;
  std::string pem = key.publicPem();
  SignatureVerifier v;
  ASSERT_TRUE(v.loadPublicKey(reinterpret_cast<const uint8_t*>(pem.data()), pem.size()));
  uint8_t hash[32];
  for (int i = 0; i < 32; ++i) hash[i] = static_cast<uint8_t>(i * 7);
  uint8_t sig[64];
  key.sign(hash, sig);
  EXPECT_TRUE(v.verify(hash, sig, 64));
  uint8_t bad[64];
  std::copy(sig, sig + 64, bad);
  bad[10] ^= 1;
  EXPECT_FALSE(v.verify(hash, bad, 64));
  hash[0] ^= 1;
  EXPECT_FALSE(v.verify(hash, sig, 64));
  EXPECT_FALSE(v.verify(hash, sig, 63));
  EXPECT_FALSE(v.verify(hash, nullptr, 0));
}

TEST(SignatureVerifier, RefusesKeysThatAreNotP256PublicKeys) {
  SignatureVerifier v;
  const char junk[] = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
  EXPECT_FALSE(v.loadPublicKey(reinterpret_cast<const uint8_t*>(junk), sizeof junk));
  EXPECT_FALSE(v.hasKey());
}

}  // namespace

namespace {

// tests/vectors/signature.json: the same signatures the TypeScript side verifies (protocol §4.2).
TEST(SignatureVerifier, GoldenSignatureVectors) {
  json_mini::Value doc =
      json_mini::parseFile(std::string(OTA_VECTORS_DIR) + "/signature.json");
  const std::string& pem = doc["publicKeyPem"].string;
  SignatureVerifier v;
  ASSERT_TRUE(v.loadPublicKey(reinterpret_cast<const uint8_t*>(pem.c_str()), pem.size() + 1));
  for (const json_mini::Value& vec : doc["vectors"].array) {
    std::vector<uint8_t> sha = json_mini::hex(vec["sha256"].string);
    std::vector<uint8_t> sig = json_mini::hex(vec["signature"].string);
    ASSERT_EQ(sha.size(), 32u);
    EXPECT_EQ(v.verify(sha.data(), sig.data(), sig.size()), vec["valid"].boolean)
        << vec["name"].string;
  }
}

}  // namespace
