// data_plan.hpp: which token window each (step, slot, row) trains on -- a pure function.
//
// A stream of N tokens is cut into W = (N - 1) / T windows of T + 1 tokens; window w covers
// tokens [w*T, w*T + T]: inputs are its first T tokens, targets its last T. The global batch
// of a step is slots x micro_batch windows; global sample g = (step*slots + slot)*B + b
// (B = micro_batch), epoch e = g / W, position p = g % W, and the window is perm_e(p) for a
// seeded permutation of [0, W) per epoch. So the data position is the step number alone:
// resuming at step s, on any world size, replays exactly the samples an unbroken run would.
//
// The permutations are drawn with the project's splitmix64 (engine/rng.hpp), not <random>'s
// distributions, whose output differs between standard libraries: the plan is the same on
// every machine and compiler.
#pragma once

#include <array>
#include <cstdint>
#include <utility>
#include <vector>

namespace lz::engine {

class data_plan {
public:
  // Throws lz::data_error when num_tokens cannot hold one window of seq_len + 1 tokens,
  // lz::spec_error when seq_len, slots or micro_batch is not positive.
  data_plan(uint64_t seed, int64_t num_tokens, int64_t seq_len, int64_t slots,
            int64_t micro_batch);

  int64_t windows_per_epoch() const { return windows_; }
  int64_t seq_len() const { return seq_len_; }
  int64_t slots() const { return slots_; }
  int64_t micro_batch() const { return micro_batch_; }

  // The window of row b of micro slot `slot` at `step`; its first token is window*seq_len.
  // Depends only on (seed, step, slot, b); the object caches the permutations of the two
  // most recently used epochs (hence const, with a mutable cache), so it is not safe to
  // call from several threads at once.
  int64_t window(int64_t step, int64_t slot, int64_t b) const;

  // Epochs completed before `step` starts (fractional): step * slots * micro_batch / W.
  double epoch_of(int64_t step) const;

private:
  struct cached_perm {
    int64_t epoch = -1;           // -1: empty
    std::vector<uint32_t> perm;   // (W,) window at each position of the epoch
  };

  const std::vector<uint32_t>& perm_of(int64_t epoch) const;

  uint64_t seed_;
  int64_t seq_len_;      // T
  int64_t slots_;
  int64_t micro_batch_;  // B
  int64_t windows_;      // W
  // A cache only: never changes what window() returns.
  mutable std::array<cached_perm, 2> cache_;
  mutable int last_used_ = 0;  // index into cache_ of the most recent hit
};

// The seeded permutation of [0, windows) for `epoch` (what data_plan caches).
std::vector<uint32_t> epoch_permutation(uint64_t seed, int64_t epoch, int64_t windows);

// The contiguous slots [begin, end) that `rank` of a `world`-rank world owns. The first
// slots % world ranks own one slot more than the others; every slot has exactly one
// owner; a rank owns none when world > slots.
std::pair<int64_t, int64_t> slot_range(int64_t slots, int64_t world, int64_t rank);

}  // namespace lz::engine
