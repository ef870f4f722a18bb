// gpt2_config.hpp: the shape of a GPT-2 family model.
#pragma once

#include <cstdint>

#include "config/run_spec.hpp"

namespace lz::engine {

struct gpt2_config {
  int64_t max_seq_len = 0;        // maxT
  int64_t vocab_size = 0;         // V
  int64_t padded_vocab_size = 0;  // Vp >= V, rows of wte
  int64_t layers = 0;             // L
  int64_t heads = 0;              // NH
  int64_t channels = 0;           // C

  static gpt2_config from_spec(const config::run_spec& spec);
  bool operator==(const gpt2_config&) const = default;
};

}  // namespace lz::engine
