#include "actors/model_descriptor.hpp"

#include <cstdio>

#include <fmt/format.h>

#include "config/error.hpp"

namespace lz::actors {

std::string model_descriptor(const engine::gpt2_config& c) {
  return fmt::format("gpt2 maxT={} V={} Vp={} L={} NH={} C={}", c.max_seq_len, c.vocab_size,
                     c.padded_vocab_size, c.layers, c.heads, c.channels);
}

engine::gpt2_config parse_model_descriptor(const std::string& text) {
  long long t = 0, v = 0, vp = 0, l = 0, nh = 0, ch = 0;
  int consumed = 0;
  const int n = std::sscanf(text.c_str(), "gpt2 maxT=%lld V=%lld Vp=%lld L=%lld NH=%lld C=%lld%n",
                            &t, &v, &vp, &l, &nh, &ch, &consumed);
  if (n != 6 || static_cast<size_t>(consumed) != text.size()) {
    LZ_THROW(format_error, "'{}' is not a model descriptor (gpt2 maxT=.. V=.. Vp=.. L=.. NH=.. C=..)",
             text);
  }
  return {t, v, vp, l, nh, ch};
}

checkpoint::llmc_header llmc_header_of(const engine::gpt2_config& c) {
  return {static_cast<int32_t>(c.max_seq_len), static_cast<int32_t>(c.vocab_size),
          static_cast<int32_t>(c.layers),      static_cast<int32_t>(c.heads),
          static_cast<int32_t>(c.channels),    static_cast<int32_t>(c.padded_vocab_size)};
}

engine::gpt2_config gpt2_config_of(const checkpoint::llmc_header& h) {
  return {h.max_seq_len, h.vocab_size, h.padded_vocab_size, h.layers, h.heads, h.channels};
}

}  // namespace lz::actors
