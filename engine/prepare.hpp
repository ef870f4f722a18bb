// prepare.hpp: `lazarus data prepare` -- text files to llm.c token shards.
//
// The texts are tokenized byte-level and joined with a newline (0x0A) between files; the
// last val_fraction of the tokens becomes val_000.bin, the rest train_000.bin,
// train_001.bin, ... of at most shard_tokens tokens each.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lz::engine {

struct prepare_result {
  int64_t train_tokens = 0;
  int64_t val_tokens = 0;
  std::vector<std::string> files;  // the shards written: train_000.bin ..., then val_000.bin
};

// Creates output_dir (with parents) and writes the shards there (write_token_shard), then
// removes train_NNN.bin files left there by an earlier, larger preparation so that a glob
// of the directory sees only this data set.
// The validation split holds max(2, floor(N * val_fraction)) of the N tokens; the training
// split must keep at least 2.
// Throws lz::data_error for a missing, unreadable or empty input file, or text too short
// to split; lz::spec_error for val_fraction outside (0, 1) or shard_tokens < 1;
// lz::io_error when the output cannot be written.
prepare_result prepare_text_shards(const std::vector<std::string>& inputs,
                                   const std::string& output_dir,
                                   double val_fraction = 0.05,
                                   int64_t shard_tokens = 100'000'000);

}  // namespace lz::engine
