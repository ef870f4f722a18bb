// data_plan.cpp: seeded per-epoch permutations and the (step, slot, row) -> window map.
#include "engine/data_plan.hpp"

#include <algorithm>
#include <limits>
#include <numeric>

#include "config/error.hpp"  // LZ_THROW, LZ_CHECK
#include "engine/rng.hpp"    // splitmix64, mix_seed

namespace lz::engine {

std::vector<uint32_t> epoch_permutation(uint64_t seed, int64_t epoch, int64_t windows) {
  LZ_CHECK(epoch >= 0 && windows >= 1, "epoch {} windows {}", epoch, windows);
  std::vector<uint32_t> perm(static_cast<size_t>(windows));  // (W,)
  std::iota(perm.begin(), perm.end(), uint32_t{0});
  // Seed and epoch both go through the mixer: nearby seeds or epochs give unrelated orders.
  splitmix64 rng(mix_seed(seed, static_cast<uint64_t>(epoch)));
  // Fisher-Yates: position i takes a uniform pick among the not yet placed [0, i].
  for (size_t i = perm.size() - 1; i > 0; --i) {
    const auto j = static_cast<size_t>(rng.below(i + 1));
    std::swap(perm[i], perm[j]);
  }
  return perm;
}

data_plan::data_plan(uint64_t seed, int64_t num_tokens, int64_t seq_len, int64_t slots,
                     int64_t micro_batch)
  : seed_(seed), seq_len_(seq_len), slots_(slots), micro_batch_(micro_batch), windows_(0) {
  if (seq_len < 1 || slots < 1 || micro_batch < 1)
    LZ_THROW(lz::spec_error, "data plan: data.seq_len ({}), slots ({}) and micro_batch ({}) "
             "must all be at least 1", seq_len, slots, micro_batch);
  if (num_tokens < seq_len + 1)
    LZ_THROW(lz::data_error, "data plan: {} tokens cannot hold one window of data.seq_len + "
             "1 = {} tokens; use a smaller data.seq_len or more data", num_tokens,
             seq_len + 1);
  windows_ = (num_tokens - 1) / seq_len;
  if (windows_ > int64_t{std::numeric_limits<uint32_t>::max()})
    LZ_THROW(lz::data_error, "data plan: {} tokens at data.seq_len {} make {} windows, more "
             "than the {} a plan supports; use a larger data.seq_len or less data",
             num_tokens, seq_len, windows_, std::numeric_limits<uint32_t>::max());
}

const std::vector<uint32_t>& data_plan::perm_of(int64_t epoch) const {
  for (int i = 0; i < 2; ++i) {
    if (cache_[i].epoch == epoch) {
      last_used_ = i;
      return cache_[i].perm;
    }
  }
  const int victim = 1 - last_used_;  // keep the most recently used epoch
  cache_[victim].epoch = epoch;
  cache_[victim].perm = epoch_permutation(seed_, epoch, windows_);
  last_used_ = victim;
  return cache_[victim].perm;
}

int64_t data_plan::window(int64_t step, int64_t slot, int64_t b) const {
  LZ_CHECK(step >= 0 && slot >= 0 && slot < slots_ && b >= 0 && b < micro_batch_,
           "step {} slot {} of {} row {} of {}", step, slot, slots_, b, micro_batch_);
  int64_t g = 0;  // global sample index (step*slots + slot)*B + b
  const bool overflow = __builtin_mul_overflow(step, slots_, &g) ||
                        __builtin_add_overflow(g, slot, &g) ||
                        __builtin_mul_overflow(g, micro_batch_, &g) ||
                        __builtin_add_overflow(g, b, &g);
  LZ_CHECK(!overflow, "global sample index overflows int64 at step {}", step);
  return perm_of(g / windows_)[static_cast<size_t>(g % windows_)];
}

double data_plan::epoch_of(int64_t step) const {
  return static_cast<double>(step) * static_cast<double>(slots_ * micro_batch_) /
         static_cast<double>(windows_);
}

std::pair<int64_t, int64_t> slot_range(int64_t slots, int64_t world, int64_t rank) {
  LZ_CHECK(slots >= 0 && world >= 1 && rank >= 0 && rank < world,
           "slots {} world {} rank {}", slots, world, rank);
  const int64_t base = slots / world;
  const int64_t extra = slots % world;  // ranks [0, extra) own base + 1
  const int64_t begin = rank * base + std::min(rank, extra);
  const int64_t end = begin + base + (rank < extra ? 1 : 0);
  return {begin, end};
}

}  // namespace lz::engine
