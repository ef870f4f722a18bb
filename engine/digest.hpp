// digest.hpp: SHA-256 of a byte range, as lowercase hex (OpenSSL's EVP interface).
#pragma once

#include <cstddef>
#include <string>

namespace lz::engine {

std::string sha256_hex(const void* data, size_t bytes);

}  // namespace lz::engine
