// test_keys.h: a throw-away ECDSA P-256 key pair for the signature tests, generated with the
// host's mbedTLS 2.28 (test code only; the core itself only verifies).
#pragma once

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>

#include <cstdint>
#include <cstring>
#include <string>

/// A P-256 key pair that signs sha256 digests as r||s and exports its public key as PEM.
class TestKey {
 public:
  TestKey() {
    mbedtls_entropy_init(&entropy_);
    mbedtls_ctr_drbg_init(&drbg_);
    mbedtls_pk_init(&pk_);
    mbedtls_ctr_drbg_seed(&drbg_, mbedtls_entropy_func, &entropy_,
                          reinterpret_cast<const unsigned char*>("ota"), 3);
    mbedtls_pk_setup(&pk_, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
    mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(pk_), mbedtls_ctr_drbg_random, &drbg_);
  }
  ~TestKey() {
    mbedtls_pk_free(&pk_);
    mbedtls_ctr_drbg_free(&drbg_);
    mbedtls_entropy_free(&entropy_);
  }
  /// PEM text including its terminating NUL (as mbedtls_pk_parse_public_key wants).
  std::string publicPem() {
    unsigned char buf[512];
    mbedtls_pk_write_pubkey_pem(&pk_, buf, sizeof buf);
    return std::string(reinterpret_cast<char*>(buf), std::strlen(reinterpret_cast<char*>(buf)) + 1);
  }
  /// ECDSA-with-SHA-256 over the 32 bytes `digest` (so the curve signs SHA-256(digest)), as the
  /// sender's WebCrypto does.
  void sign(const uint8_t digest[32], uint8_t out[64]) {
    uint8_t hash[32];
    mbedtls_sha256_ret(digest, 32, hash, 0);
    mbedtls_mpi r, s;
    mbedtls_mpi_init(&r);
    mbedtls_mpi_init(&s);
    mbedtls_ecp_keypair* ec = mbedtls_pk_ec(pk_);
    mbedtls_ecdsa_sign(&ec->grp, &r, &s, &ec->d, hash, 32, mbedtls_ctr_drbg_random, &drbg_);
    mbedtls_mpi_write_binary(&r, out, 32);
    mbedtls_mpi_write_binary(&s, out + 32, 32);
    mbedtls_mpi_free(&r);
    mbedtls_mpi_free(&s);
  }

 private:
  mbedtls_entropy_context entropy_;
  mbedtls_ctr_drbg_context drbg_;
  mbedtls_pk_context pk_;
};
