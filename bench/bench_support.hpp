// bench_support.hpp: what the benchmarks share: medians, a silent logger, a shard of random
// tokens and the spec of a rank session for a given model shape.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include "config/run_spec.hpp"
#include "engine/gpt2_config.hpp"
#include "engine/rng.hpp"
#include "engine/token_shard.hpp"

namespace lz::bench {

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

inline std::shared_ptr<spdlog::logger> null_logger() {
  return std::make_shared<spdlog::logger>("bench",
                                          std::make_shared<spdlog::sinks::null_sink_mt>());
}

// Writes `count` random tokens below `vocab` as an llm.c token shard at `path`.
inline void write_random_tokens(const std::string& path, int64_t count, int64_t vocab,
                                uint64_t seed) {
  engine::splitmix64 rng(seed);
  std::vector<uint16_t> tokens(static_cast<size_t>(count));
  for (auto& t : tokens) t = static_cast<uint16_t>(rng.below(static_cast<uint64_t>(vocab)));
  engine::write_token_shard(path, tokens);
}

// The spec of a run of model `m` with micro batches of B x T, `slots` slots per step and
// `steps` steps; everything else is the schema's default.
inline config::run_spec spec_for_model(const engine::gpt2_config& m, int64_t B, int64_t T,
                                       int64_t slots, int64_t steps) {
  config::run_spec spec;
  spec.model.vocab_size = m.vocab_size;
  spec.model.padded_vocab_size = m.padded_vocab_size;
  spec.model.max_seq_len = m.max_seq_len;
  spec.model.layers = m.layers;
  spec.model.heads = m.heads;
  spec.model.channels = m.channels;
  spec.data.seq_len = T;
  spec.data.micro_batch = B;
  spec.data.slots = slots;
  spec.run.steps = steps;
  return spec;
}

}  // namespace lz::bench
