// crypto_mbedtls.cpp: the one file that includes mbedTLS. mbedTLS 3.0 renamed the *_ret hashing
// functions and made struct fields private; MBEDTLS_VERSION_NUMBER picks the right calls so the
// same source builds against Debian's 2.28 and ESP-IDF 5.5's 3.6. Only stable public API is used.
#include "ota_core/crypto.h"

#include <cstring>
#include <new>

#include <mbedtls/version.h>
#include <mbedtls/pk.h>
#include <mbedtls/ecp.h>
#include <mbedtls/sha256.h>

namespace ota_core {
namespace {

#if MBEDTLS_VERSION_NUMBER >= 0x03000000
inline int shaStarts(mbedtls_sha256_context* c) { return mbedtls_sha256_starts(c, 0); }
inline int shaUpdate(mbedtls_sha256_context* c, const uint8_t* d, size_t n) {
  return mbedtls_sha256_update(c, d, n);
}
inline int shaFinish(mbedtls_sha256_context* c, uint8_t* out) {
  return mbedtls_sha256_finish(c, out);
}
inline int pkVerify(mbedtls_pk_context* pk, const uint8_t* hash, const uint8_t* sig, size_t n) {
  return mbedtls_pk_verify(pk, MBEDTLS_MD_SHA256, hash, kSha256Bytes, sig, n);
}
#else
inline int shaStarts(mbedtls_sha256_context* c) { return mbedtls_sha256_starts_ret(c, 0); }
inline int shaUpdate(mbedtls_sha256_context* c, const uint8_t* d, size_t n) {
  return mbedtls_sha256_update_ret(c, d, n);
}
inline int shaFinish(mbedtls_sha256_context* c, uint8_t* out) {
  return mbedtls_sha256_finish_ret(c, out);
}
inline int pkVerify(mbedtls_pk_context* pk, const uint8_t* hash, const uint8_t* sig, size_t n) {
  return mbedtls_pk_verify(pk, MBEDTLS_MD_SHA256, hash, kSha256Bytes, sig, n);
}
#endif

static_assert(sizeof(mbedtls_sha256_context) <= Sha256::kStorageBytes,
              "Sha256::kStorageBytes is too small for this mbedTLS build");
static_assert(alignof(mbedtls_sha256_context) <= 8, "mbedtls_sha256_context alignment");
static_assert(sizeof(mbedtls_pk_context) <= SignatureVerifier::kStorageBytes,
              "SignatureVerifier::kStorageBytes is too small for this mbedTLS build");
static_assert(alignof(mbedtls_pk_context) <= 8, "mbedtls_pk_context alignment");

/// DER INTEGER of a 32-byte big-endian unsigned value: strip leading zeros, keep it positive.
size_t derInteger(const uint8_t* v, uint8_t* out) {
  size_t skip = 0;
  while (skip < 31 && v[skip] == 0) ++skip;
  size_t len = 32 - skip;
  bool pad = (v[skip] & 0x80) != 0;
  size_t pos = 0;
  out[pos++] = 0x02;
  out[pos++] = static_cast<uint8_t>(len + (pad ? 1 : 0));
  if (pad) out[pos++] = 0x00;
  std::memcpy(out + pos, v + skip, len);
  return pos + len;
}

}  // namespace

Sha256::Sha256() {
  auto* ctx = new (storage_) mbedtls_sha256_context;
  mbedtls_sha256_init(ctx);
}

Sha256::~Sha256() { mbedtls_sha256_free(reinterpret_cast<mbedtls_sha256_context*>(storage_)); }

void Sha256::begin() { shaStarts(reinterpret_cast<mbedtls_sha256_context*>(storage_)); }

void Sha256::update(const uint8_t* data, size_t size) {
  if (size != 0) shaUpdate(reinterpret_cast<mbedtls_sha256_context*>(storage_), data, size);
}

void Sha256::finish(uint8_t out[kSha256Bytes]) {
  shaFinish(reinterpret_cast<mbedtls_sha256_context*>(storage_), out);
}

SignatureVerifier::SignatureVerifier() {
  auto* pk = new (storage_) mbedtls_pk_context;
  mbedtls_pk_init(pk);
}

SignatureVerifier::~SignatureVerifier() {
  mbedtls_pk_free(reinterpret_cast<mbedtls_pk_context*>(storage_));
}

bool SignatureVerifier::loadPublicKey(const uint8_t* key, size_t size) {
  auto* pk = reinterpret_cast<mbedtls_pk_context*>(storage_);
  mbedtls_pk_free(pk);
  mbedtls_pk_init(pk);
  loaded_ = false;
  if (mbedtls_pk_parse_public_key(pk, key, size) != 0) return false;
  if (!mbedtls_pk_can_do(pk, MBEDTLS_PK_ECDSA)) return false;
  // Only P-256 is protocol-conformant; another curve would make every signature fail anyway,
  // but refusing here turns a configuration mistake into a start-up error.
  if (mbedtls_pk_get_bitlen(pk) != 256) return false;
  loaded_ = true;
  return true;
}

bool SignatureVerifier::verify(const uint8_t sha256[kSha256Bytes], const uint8_t* signature,
                               size_t size) const {
  if (!loaded_ || signature == nullptr || size != kSignatureBytes) return false;
  // mbedtls_pk_verify takes the ASN.1 form SEQUENCE { INTEGER r, INTEGER s }; the wire carries
  // the fixed-size r||s form, so re-encode (at most 2 + 2 * 35 bytes).
  uint8_t der[2 + 2 * 35];
  size_t body = derInteger(signature, der + 2);
  body += derInteger(signature + 32, der + 2 + body);
  der[0] = 0x30;
  der[1] = static_cast<uint8_t>(body);
  // The signed message is the 32-byte image digest itself, hashed once more by ECDSA-with-SHA-256
  // (what WebCrypto's ECDSA/SHA-256 in the sender computes): e = SHA-256(sha256).
  Sha256 h;
  h.begin();
  h.update(sha256, kSha256Bytes);
  uint8_t e[kSha256Bytes];
  h.finish(e);
  auto* pk = const_cast<mbedtls_pk_context*>(reinterpret_cast<const mbedtls_pk_context*>(storage_));
  return pkVerify(pk, e, der, body + 2) == 0;
}

}  // namespace ota_core
