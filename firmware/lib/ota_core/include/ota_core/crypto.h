// ota_core/crypto.h: SHA-256 and ECDSA P-256 verification, the only cryptography the receiver
// needs. One implementation file (crypto_mbedtls.cpp) owns the mbedTLS dependency and bridges
// mbedTLS 2.28 (Debian host) and 3.6 (ESP-IDF 5.5); this header includes no mbedTLS header so the
// platform glue and the state machine compile without it. The mbedTLS contexts live in fixed
// in-object storage (no heap); crypto_mbedtls.cpp static_asserts that they fit.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ota_core/limits.h"

namespace ota_core {

/// Incremental SHA-256.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  /// Starts a new digest (discarding any running one).
  void begin();
  void update(const uint8_t* data, size_t size);
  /// Writes the digest; begin() must be called before the next update().
  void finish(uint8_t out[kSha256Bytes]);

  /// Bytes of in-object storage reserved for the mbedTLS context.
  static constexpr size_t kStorageBytes = 256;

 private:
  alignas(8) unsigned char storage_[kStorageBytes];
};

/// Verifies ECDSA P-256 signatures (`r||s`, 64 bytes, protocol §4.2) over a SHA-256 digest with
/// one public key loaded at start-up.
class SignatureVerifier {
 public:
  SignatureVerifier();
  ~SignatureVerifier();
  SignatureVerifier(const SignatureVerifier&) = delete;
  SignatureVerifier& operator=(const SignatureVerifier&) = delete;

  /// Loads a P-256 public key in PEM ("-----BEGIN PUBLIC KEY-----", SubjectPublicKeyInfo) or DER.
  /// PEM text must include its terminating NUL in `size` (mbedTLS rule). Returns false for any
  /// other key type. Parsing allocates through mbedTLS's allocator: call it at start-up only.
  bool loadPublicKey(const uint8_t* key, size_t size);
  /// True once a key is loaded: from then on unsigned images are refused.
  bool hasKey() const { return loaded_; }
  /// True when `signature` (r||s) is a valid ECDSA-with-SHA-256 signature of the 32 bytes
  /// `sha256` (the manifest's image digest, hashed once more as ECDSA prescribes: this is what
  /// the sender's WebCrypto ECDSA/SHA-256 signs) under the loaded key.
  /// mbedTLS computes with heap-allocated bignums for the duration of this call (once per
  /// transfer, a few hundred bytes).
  bool verify(const uint8_t sha256[kSha256Bytes], const uint8_t* signature, size_t size) const;

  static constexpr size_t kStorageBytes = 256;

 private:
  alignas(8) unsigned char storage_[kStorageBytes];
  bool loaded_ = false;
};

}  // namespace ota_core
