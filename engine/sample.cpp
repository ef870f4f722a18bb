#include "engine/sample.hpp"

#include <algorithm>
#include <cmath>

#include "config/error.hpp"
#include "engine/rng.hpp"
#include "engine/tokenizer.hpp"

namespace lz::engine {

std::vector<int32_t> sample_tokens(gpt2& model, std::vector<int32_t> prompt, int64_t count,
                                   double temperature, uint64_t seed) {
  LZ_CHECK(!prompt.empty(), "sampling needs a prompt of at least one token");
  LZ_CHECK(temperature > 0.0, "temperature {}", temperature);
  const int64_t V = model.config().vocab_size, Vp = model.config().padded_vocab_size;
  splitmix64 rng(seed);
  std::vector<double> weights(static_cast<size_t>(V));
  // The forward runs on a window rounded up to a multiple of 32 tokens (padding after the
  // context cannot change a causal model's prediction at the context's last position), so
  // a handful of shapes serve the whole loop instead of one new GEMM shape per token.
  const int64_t maxT = model.config().max_seq_len;
  std::vector<int32_t> window;
  for (int64_t i = 0; i < count; i++) {
    const int64_t T = std::min<int64_t>(static_cast<int64_t>(prompt.size()), maxT);
    const int64_t padded = std::min<int64_t>((T + 31) / 32 * 32, maxT);
    window.assign(prompt.end() - T, prompt.end());
    window.resize(static_cast<size_t>(padded), 0);
    model.forward(window.data(), nullptr, 1, padded);
    const float* probs = model.probs() + (T - 1) * Vp;  // last real position (Vp,)
    double total = 0.0;
    for (int64_t v = 0; v < V; v++) {
      const double w = std::pow(static_cast<double>(probs[v]), 1.0 / temperature);
      weights[static_cast<size_t>(v)] = w;
      total += w;
    }
    double u = rng.uniform() * total;
    int32_t next = static_cast<int32_t>(V - 1);
    for (int64_t v = 0; v < V; v++) {
      u -= weights[static_cast<size_t>(v)];
      if (u < 0.0) {
        next = static_cast<int32_t>(v);
        break;
      }
    }
    prompt.push_back(next);
  }
  return prompt;
}

std::string sample_text(gpt2& model, const std::string& prompt, int64_t count,
                        double temperature, uint64_t seed) {
  LZ_CHECK(model.config().vocab_size == 256, "text sampling needs a byte-level model, V = {}",
           model.config().vocab_size);
  const byte_tokenizer tok;
  const std::vector<uint16_t> p16 = tok.encode(prompt);
  const auto out = sample_tokens(model, std::vector<int32_t>(p16.begin(), p16.end()), count,
                                 temperature, seed);
  const std::vector<uint16_t> out16(out.begin(), out.end());
  return tok.decode(out16.data(), out16.size());
}

}  // namespace lz::engine
