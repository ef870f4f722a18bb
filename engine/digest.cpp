#include "engine/digest.hpp"

#include <memory>

#include <openssl/evp.h>

#include "config/error.hpp"

namespace lz::engine {

std::string sha256_hex(const void* data, size_t bytes) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(),
                                                              &EVP_MD_CTX_free);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  LZ_CHECK(ctx != nullptr && EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) == 1 &&
               EVP_DigestUpdate(ctx.get(), data, bytes) == 1 &&
               EVP_DigestFinal_ex(ctx.get(), digest, &length) == 1,
           "OpenSSL SHA-256 failed");
  static const char* hex = "0123456789abcdef";
  std::string out;
  out.reserve(2 * length);
  for (unsigned int i = 0; i < length; i++) {
    out.push_back(hex[digest[i] >> 4]);
    out.push_back(hex[digest[i] & 15]);
  }
  return out;
}

}  // namespace lz::engine
