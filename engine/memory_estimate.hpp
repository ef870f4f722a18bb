// memory_estimate.hpp: the host memory a run needs, known from its spec before anything
// is allocated, and the check that refuses a run that cannot fit.
//
// The figures are those of one process that runs all parallel.ranks ranks of a run
// (actors/launcher.cpp): every rank holds a model (fp32 parameters, gradients,
// activations) and, with the exact reduction, the gradient buffers of its slot subtrees;
// the AdamW moments and the host snapshot buffers of asynchronous checkpoints are split
// among the ranks (ZeRO-1), so they count once. Token shards are read by the run itself, so their size is the caller's to
// give (0 when not known). Every figure is computed with overflow checks.
#pragma once

#include <cstdint>

#include "config/run_spec.hpp"

namespace lz::engine {

struct run_memory_estimate {
  int64_t parameter_count = 0;           // P
  int64_t ranks = 1;                     // ranks in the process (parallel.ranks)
  int64_t activation_micro_batch = 0;    // B of the activation buffers
  int64_t activation_seq_len = 0;        // T of the activation buffers (see below)
  // Per rank (the total counts them `ranks` times):
  uint64_t parameters_bytes = 0;         // P x 4
  uint64_t gradients_bytes = 0;          // P x 4
  uint64_t reduction_bytes = 0;          // exact: peak_subtree_values(slots, ranks) x P x 4
  uint64_t activations_bytes = 0;        // forward and backward buffers for (B, T)
  // For the whole world, split among its ranks:
  uint64_t adam_m_bytes = 0;             // P x 4, AdamW first moments
  uint64_t adam_v_bytes = 0;             // P x 4, AdamW second moments
  uint64_t checkpoint_snapshot_bytes = 0;  // 3 x P x 4 (weights, m, v) when saving, else 0
  uint64_t memory_copies_bytes = 0;      // with replica_every_steps > 0: 4 x 3 x P x 4, each
                                         // rank's own copy and its buddy's, each twice (the
                                         // kept one and the one being filled); one rank
                                         // has no buddy: 2 x 3 x P x 4
  uint64_t token_data_bytes = 0;         // as given by the caller
  uint64_t total_bytes = 0;              // the sum of the parts
};

// The memory `spec` needs. Activations are those of data.micro_batch x T, where T is
// data.seq_len or, when run.sample_tokens > 0, the longer window the end-of-run sample
// runs on the same buffers (up to model.max_seq_len): they keep their largest shape.
// Throws lz::spec_error naming the keys when a figure overflows int64.
run_memory_estimate estimate_run_memory(const config::run_spec& spec,
                                        uint64_t token_data_bytes = 0);

// Throws lz::spec_error when the estimate exceeds available_bytes: the message gives
// each part in GiB, the total and the available figure, and which keys lower which part.
void require_memory_fits(const config::run_spec& spec, uint64_t available_bytes,
                         uint64_t token_data_bytes = 0);

// The memory this process may use: the machine's physical memory, or the cgroup's limit
// when that is lower. 0 when neither can be read.
uint64_t physical_memory_bytes();

}  // namespace lz::engine
