// local_run.hpp: `lazarus run` in one process: data, model, the training loop, metrics,
// validation, the summary and a sample of text.
//
// Nothing is written before every check that can refuse the start has passed (see
// run_state.hpp). State dir layout:
//   spec.toml          the resolved spec of the last accepted start
//   run.log            the log, appended to; each start begins with a "====" line
//   metrics.jsonl      one JSON object per step (val_loss on evaluation steps)
//   summary.json       written at the end
//   final_model.bin    the final weights as an llm.c model file
//   sample.txt         text sampled from the final model
//   run_identity, catalog/, checkpoints/, attic/   see run_state.hpp
#pragma once

#include <cstdint>
#include <string>

#include "actors/run_state.hpp"
#include "config/run_spec.hpp"

namespace lz::actors {

struct local_run_options {
  std::string state_dir;
  bool progress = true;  // a progress line on stderr when it is a terminal
  run_start_flags start;
};

struct local_run_result {
  int64_t steps = 0;
  double final_loss = 0.0;
  double val_loss = 0.0;
  double tokens_per_s = 0.0;
  std::string weights_sha256;
  int stopped_by_signal = 0;  // SIGINT or SIGTERM stopped the run early (state saved)
};

local_run_result run_local(const config::run_spec& spec, const local_run_options& options);

// Samples `tokens` bytes of text from the final model of a state dir.
std::string sample_from_state_dir(const std::string& state_dir, const std::string& prompt,
                                  int64_t tokens, double temperature, uint64_t seed,
                                  int threads);

}  // namespace lz::actors
