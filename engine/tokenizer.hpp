// tokenizer.hpp: the byte-level tokenizer (one token per byte, vocab 256).
//
// `lazarus data prepare` uses it by default; a GPT-2 BPE tokenizer can later sit beside it
// with the same encode / decode / vocab_size shape.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lz::engine {

class byte_tokenizer {
public:
  static constexpr int64_t byte_vocab_size = 256;

  // One token per byte, token id = the byte's unsigned value.
  std::vector<uint16_t> encode(std::string_view text) const;
  // The bytes of `count` tokens; a token >= 256 throws lz::data_error naming it.
  std::string decode(const uint16_t* tokens, size_t count) const;
  int64_t vocab_size() const { return byte_vocab_size; }
};

// Free-function forms of byte_tokenizer.
std::vector<uint16_t> encode_bytes(std::string_view text);
std::string decode_bytes(const uint16_t* tokens, size_t count);

}  // namespace lz::engine
