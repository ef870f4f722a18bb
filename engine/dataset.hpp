// dataset.hpp: token shards in memory and the batches cut from them.
//
// token_dataset concatenates the validated shards of a data set into one stream;
// train_batcher fills a micro slot's rows from the data plan (shuffled per epoch);
// fill_val walks the validation stream in order, so validation loss is comparable across
// steps. Inputs and targets are int32 token ids, row-major (B, T).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/data_plan.hpp"  // data_plan

namespace lz::engine {

class token_dataset {
public:
  // Reads every shard (read_token_shard: each token checked < vocab_size) and
  // concatenates them in the given order. Throws lz::data_error for an empty list or a bad
  // shard.
  token_dataset(const std::vector<std::string>& paths, int64_t vocab_size);
  // The shards matching a glob pattern, in sorted order (expand_shard_glob).
  static token_dataset from_glob(const std::string& pattern, int64_t vocab_size);

  int64_t num_tokens() const { return static_cast<int64_t>(tokens_.size()); }
  const std::vector<uint16_t>& tokens() const { return tokens_; }  // (N,)
  const std::vector<std::string>& paths() const { return paths_; }
  // Tokens of each shard, in the order of paths().
  const std::vector<int64_t>& shard_tokens() const { return shard_tokens_; }

  // Windows of seq_len + 1 tokens starting at multiples of seq_len: (N - 1) / seq_len.
  int64_t num_windows(int64_t seq_len) const;

  // inputs (T,) = tokens [w*T, w*T + T), targets (T,) = tokens [w*T + 1, w*T + T].
  // `window` must be < num_windows(seq_len) (checked: a caller bug otherwise).
  void fill_window(int64_t window, int64_t seq_len, int32_t* inputs, int32_t* targets) const;

private:
  std::vector<std::string> paths_;
  std::vector<uint16_t> tokens_;  // (N,) all shards back to back
  std::vector<int64_t> shard_tokens_;
};

// What identifies a training data set on resume: for each shard, in order, its file name,
// size, token count and an xxh3-64 of its tokens; one line per shard. Two data sets with
// the same fingerprint feed the same token stream to the data plan.
std::string data_fingerprint(const token_dataset& data);

// "" when the fingerprints are equal, else what differs, one line per shard.
std::string describe_fingerprint_change(const std::string& recorded, const std::string& now);

// Where a training step gets the batch of a micro slot: the same (step, slot) gives the same
// tokens whoever asks (a batcher over the data in this process, or a node's data feeder).
class batch_source {
public:
  virtual ~batch_source() = default;
  // inputs, targets: (micro_batch, seq_len) each.
  virtual void fill(int64_t step, int64_t slot, int32_t* inputs, int32_t* targets) = 0;
};

// Training batches: row b of micro slot `slot` at `step` is window(step, slot, b) of the
// plan. Keeps a reference to the dataset, which must outlive it.
class train_batcher final : public batch_source {
public:
  train_batcher(const token_dataset& data, uint64_t seed, int64_t seq_len, int64_t slots,
                int64_t micro_batch);

  // inputs, targets: (micro_batch, seq_len) each.
  void fill(int64_t step, int64_t slot, int32_t* inputs, int32_t* targets) override;
  const data_plan& plan() const { return plan_; }

private:
  const token_dataset& data_;
  data_plan plan_;
};

// Validation batch `batch_index`: rows are the consecutive windows
// batch_index*micro_batch + b, modulo the number of windows (no shuffling).
// inputs, targets: (micro_batch, seq_len) each. Throws lz::data_error when the validation
// stream is shorter than one window.
void fill_val(const token_dataset& val, int64_t batch_index, int64_t micro_batch,
              int64_t seq_len, int32_t* inputs, int32_t* targets);

}  // namespace lz::engine
