// train_step.hpp: one optimizer step, the spine of training.
//
//   for each micro slot this rank owns:  forward -> backward  (gradients accumulate)
//   global gradient norm -> clip factor
//   AdamW on this rank's range of the flat vector
//
// Each token's loss is weighted 1 / (tokens in the global batch), so the gradient is that of
// the global mean loss whatever the number of slots or their split among ranks.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "engine/dataset.hpp"
#include "engine/gpt2.hpp"
#include "engine/optimizer.hpp"

namespace lz::engine {

struct train_step_options {
  int64_t seq_len = 0;      // T
  int64_t micro_batch = 0;  // B
  int64_t slots = 1;        // micro slots in the global batch
  int64_t slot_begin = 0;   // this rank's slots [slot_begin, slot_end)
  int64_t slot_end = 1;
  double grad_clip = 0.0;   // max global gradient norm (0: off)
};

struct step_result {
  int64_t step = 0;
  double loss = 0.0;        // mean token loss over the global batch
  double grad_norm = 0.0;   // global norm before clipping
  double lr = 0.0;
  int64_t tokens = 0;       // tokens in the global batch
};

class train_step {
public:
  train_step(gpt2& model, adamw_optimizer& optimizer, train_batcher& batcher,
             const lr_schedule& schedule, const train_step_options& options);

  // Called after the backward passes and before the weights and moments change (a
  // checkpoint snapshot in flight waits here).
  void set_before_update(std::function<void()> hook) { before_update_ = std::move(hook); }
  // The next run() copies the optimizer state it is about to update (the state after the
  // previous step) into `snapshot` as it goes: a checkpoint for the price of the writes.
  void snapshot_next_update(const kernels::adamw_snapshot& snapshot) { snapshot_ = snapshot; }

  // Runs optimizer step `step` (0-based). Throws lz::error if the loss is not finite,
  // before any weight changed.
  step_result run(int64_t step);

private:
  gpt2& model_;
  adamw_optimizer& optimizer_;
  train_batcher& batcher_;
  lr_schedule schedule_;
  train_step_options options_;
  std::vector<int32_t> inputs_, targets_;  // (B, T) each
  std::function<void()> before_update_;
  std::optional<kernels::adamw_snapshot> snapshot_;
};

// Mean validation loss over `batches` micro-batches of (B, T) from the start of `val`.
// `stop` (when given) is asked before each batch; nullopt when it said stop.
std::optional<double> evaluate(gpt2& model, const token_dataset& val, int64_t batches,
                               int64_t micro_batch, int64_t seq_len,
                               const std::function<bool()>& stop = {});

}  // namespace lz::engine
