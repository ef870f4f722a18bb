#include "engine/sample.hpp"

#include <algorithm>
#include <cmath>

#include "config/error.hpp"
#include "engine/rng.hpp"

namespace lz::engine {

std::vector<int32_t> sample_tokens(gpt2& model, std::vector<int32_t> prompt, int64_t count,
                                   double temperature, uint64_t seed) {
  LZ_CHECK(!prompt.empty(), "sampling needs a prompt of at least one token");
  LZ_CHECK(temperature > 0.0, "temperature {}", temperature);
  const int64_t V = model.config().vocab_size, Vp = model.config().padded_vocab_size;
  splitmix64 rng(seed);
  std::vector<double> weights(static_cast<size_t>(V));
  for (int64_t i = 0; i < count; i++) {
    const int64_t T = std::min<int64_t>(static_cast<int64_t>(prompt.size()),
                                        model.config().max_seq_len);
    const int32_t* context = prompt.data() + prompt.size() - static_cast<size_t>(T);
    model.forward(context, nullptr, 1, T);
    const float* probs = model.probs() + (T - 1) * Vp;  // last position (Vp,)
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

}  // namespace lz::engine
