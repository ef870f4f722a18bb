// sample.hpp: autoregressive sampling from the model, for a human-readable sanity check.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/gpt2.hpp"

namespace lz::engine {

// Extends `prompt` (at least one token) by `count` tokens drawn from the model's
// distribution at `temperature`, with a seeded generator. The context is the last
// max_seq_len tokens.
std::vector<int32_t> sample_tokens(gpt2& model, std::vector<int32_t> prompt, int64_t count,
                                   double temperature, uint64_t seed);

// The same for a byte-level model (vocabulary 256): `prompt` text (not empty) continued by
// `count` bytes; returns prompt and continuation as text.
std::string sample_text(gpt2& model, const std::string& prompt, int64_t count,
                        double temperature, uint64_t seed);

}  // namespace lz::engine
