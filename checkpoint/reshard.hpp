// reshard.hpp: which rank owns which elements of the flat vectors, and which byte ranges a
// new rank reads when a checkpoint saved by W ranks is loaded into W' ranks.
//
// Ownership is one contiguous range per rank (ZeRO-1): the first total % world ranks get
// one element more than the others. Resharding is range intersection.
#pragma once

#include <cstdint>
#include <vector>

namespace lz::checkpoint {

struct flat_range {
  int64_t begin = 0;
  int64_t end = 0;  // exclusive
  int64_t size() const { return end - begin; }
  bool operator==(const flat_range&) const = default;
};

// The range of the flat vector of `total` elements that `rank` of `world` owns.
flat_range shard_range(int64_t total, int64_t world, int64_t rank);

// One piece of a read: elements [range) come from the shard saved by old rank `rank`.
struct range_read {
  int64_t rank = 0;
  flat_range range;
};

// The reads that assemble `want` from shards with the given ranges (indexed by old rank),
// in increasing element order. The shard ranges must partition [0, total): checked.
std::vector<range_read> plan_reads(const std::vector<flat_range>& shard_ranges,
                                   flat_range want);

}  // namespace lz::checkpoint
