// tokenizer.cpp: the byte-level tokenizer.
#include "engine/tokenizer.hpp"

#include "config/error.hpp"  // LZ_THROW, lz::data_error

namespace lz::engine {

std::vector<uint16_t> byte_tokenizer::encode(std::string_view text) const {
  std::vector<uint16_t> tokens(text.size());  // (N,)
  for (size_t i = 0; i < text.size(); ++i)
    tokens[i] = static_cast<uint16_t>(static_cast<unsigned char>(text[i]));
  return tokens;
}

std::string byte_tokenizer::decode(const uint16_t* tokens, size_t count) const {
  std::string text(count, '\0');
  for (size_t i = 0; i < count; ++i) {
    if (tokens[i] >= byte_vocab_size)
      LZ_THROW(lz::data_error, "byte tokenizer: token {} at position {} is not a byte "
               "(vocab {}); the tokens come from another tokenizer or a model with a "
               "larger model.vocab_size", tokens[i], i, byte_vocab_size);
    text[i] = static_cast<char>(static_cast<unsigned char>(tokens[i]));
  }
  return text;
}

std::vector<uint16_t> encode_bytes(std::string_view text) {
  return byte_tokenizer{}.encode(text);
}

std::string decode_bytes(const uint16_t* tokens, size_t count) {
  return byte_tokenizer{}.decode(tokens, count);
}

}  // namespace lz::engine
