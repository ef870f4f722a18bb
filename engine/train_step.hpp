// train_step.hpp: one optimizer step of one rank, the spine of training.
//
//   for each micro slot this rank owns:  forward -> backward into a fresh buffer
//   exact:  add the slots up the fixed slot tree (slot_tree.hpp): this rank's subtrees
//           locally, then each parameter range's owner adds every rank's subtree partials
//           for its range up the same tree (all_to_all_v)
//   fast:   accumulate this rank's slots, all_reduce_sum (the communicator's order)
//   loss:   per-slot losses up the same tree (all_gather_v of the subtree partials)
//   norm:   sum of squares per fixed chunk of the flat vector, chunks in order
//   a non-finite loss or norm: every rank sees the same value, so every rank discards
//   AdamW on this rank's range (ZeRO-1) -> all_gather_v of the parameters
//
// Each token's loss is weighted 1 / (tokens in the global batch), so the gradient is that of
// the global mean loss whatever the number of slots or their split among ranks. With the
// exact reduction the weights are bitwise the same for any number of ranks.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "engine/communicator.hpp"
#include "engine/dataset.hpp"
#include "engine/gpt2.hpp"
#include "engine/optimizer.hpp"
#include "engine/slot_tree.hpp"

namespace lz::engine {

enum class reduction { exact, fast };

// Elements per chunk of the gradient norm; owner ranges are whole chunks.
inline constexpr int64_t k_norm_chunk = 1 << 16;

// [begin, end) of the flat vector of `total` elements that `rank` of `world` owns (ZeRO-1):
// whole norm chunks, split as evenly as the chunks allow (a rank may own none).
struct owned_range {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t size() const { return end - begin; }
};
owned_range owner_range(int64_t total, int world, int rank);

struct train_step_options {
  int64_t seq_len = 0;      // T
  int64_t micro_batch = 0;  // B
  int64_t slots = 1;        // micro slots in the global batch
  double grad_clip = 0.0;   // max global gradient norm (0: off)
  reduction mode = reduction::exact;
};

struct step_result {
  int64_t step = 0;
  double loss = 0.0;        // mean token loss over the global batch
  double grad_norm = 0.0;   // global norm before clipping
  double lr = 0.0;
  int64_t tokens = 0;       // tokens in the global batch
  bool discarded = false;   // a non-finite loss or norm: no weight changed, on any rank
  std::string why;          // why it was discarded
};

class train_step {
public:
  // The optimizer must own owner_range(num_params, comm.world_size(), comm.rank()); this
  // rank trains slot_range(slots, world, rank).
  train_step(gpt2& model, adamw_optimizer& optimizer, batch_source& batcher,
             const lr_schedule& schedule, const train_step_options& options,
             communicator& comm);

  // Called after the reduction and before the weights and moments change (a checkpoint
  // snapshot in flight waits here).
  void set_before_update(std::function<void()> hook) { before_update_ = std::move(hook); }
  // The next run() copies the optimizer state it is about to update (the state after the
  // previous step) into `snapshot` as it goes: a checkpoint for the price of the writes.
  void snapshot_next_update(const kernels::adamw_snapshot& snapshot) { snapshot_ = snapshot; }
  void cancel_snapshot() { snapshot_.reset(); }
  // Fault injection (chaos and tests): this rank's loss of the next step is NaN, so every
  // rank sees a non-finite global loss and discards the step.
  void inject_nonfinite_loss() { inject_nan_ = true; }

  // Runs optimizer step `step` (0-based) on every rank of the world together. A collective
  // that fails throws comm_error (the step may be half done: the caller restores).
  step_result run(int64_t step);

  slot_node slots() const { return my_slots_; }
  // Full-length gradient buffers the exact reduction holds besides the model's own.
  int64_t gradient_buffers() const { return static_cast<int64_t>(pool_.size()); }
  owned_range owned() const { return ranges_[static_cast<size_t>(comm_.rank())]; }

private:
  // This rank's slot gradients added up its subtrees (in pool_), and their losses.
  void local_subtrees(int64_t step, float dloss);
  void reduce_exact();
  void reduce_fast(int64_t step, float dloss);
  double global_loss_exact();
  double global_norm();
  int acquire();
  void release(int index);

  gpt2& model_;
  adamw_optimizer& optimizer_;
  batch_source& batcher_;
  lr_schedule schedule_;
  train_step_options options_;
  communicator& comm_;
  slot_node my_slots_;
  std::vector<owned_range> ranges_;                // every rank's owned range
  std::vector<std::vector<slot_node>> subtrees_;   // every rank's maximal subtrees
  std::vector<int32_t> inputs_, targets_;          // (B, T) each
  std::function<void()> before_update_;
  std::optional<kernels::adamw_snapshot> snapshot_;
  bool inject_nan_ = false;

  std::vector<aligned_buffer> pool_;      // full-length gradient buffers
  std::vector<int> free_;                 // indices of pool_ not in use
  std::vector<int> parts_;                // this rank's subtree values (pool_ indices)
  std::vector<double> part_losses_;       // and their losses
  double local_loss_ = 0.0;               // fast: this rank's loss sum
};

// Mean validation loss over `batches` micro-batches of (B, T) from the start of `val`.
// `stop` (when given) is asked before each batch; nullopt when it said stop.
std::optional<double> evaluate(gpt2& model, const token_dataset& val, int64_t batches,
                               int64_t micro_batch, int64_t seq_len,
                               const std::function<bool()>& stop = {});

}  // namespace lz::engine
