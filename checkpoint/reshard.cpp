#include "checkpoint/reshard.hpp"

#include <algorithm>
#include <numeric>

#include "config/error.hpp"

namespace lz::checkpoint {

flat_range shard_range(int64_t total, int64_t world, int64_t rank) {
  LZ_CHECK(total >= 0 && world >= 1 && rank >= 0 && rank < world,
           "total {} world {} rank {}", total, world, rank);
  const int64_t base = total / world;
  const int64_t extra = total % world;  // the first `extra` ranks hold base + 1
  const int64_t begin = rank * base + std::min(rank, extra);
  return {begin, begin + base + (rank < extra ? 1 : 0)};
}

std::vector<range_read> plan_reads(const std::vector<flat_range>& shard_ranges,
                                   flat_range want) {
  // Visit the shards in element order: the ranges are indexed by rank, and although
  // shard_range() hands them out in rank order, nothing else in the format requires it.
  std::vector<size_t> order(shard_ranges.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return shard_ranges[a].begin < shard_ranges[b].begin ||
           (shard_ranges[a].begin == shard_ranges[b].begin &&
            shard_ranges[a].end < shard_ranges[b].end);
  });

  // A partition of [0, total): non-empty ranges follow each other without gap or overlap.
  // Empty ranges (more ranks than elements) may sit anywhere inside [0, total].
  int64_t total = 0;
  for (size_t i : order) {
    const flat_range& r = shard_ranges[i];
    LZ_CHECK(r.begin <= r.end, "shard {} has range [{}, {})", i, r.begin, r.end);
    if (r.size() == 0) continue;
    LZ_CHECK(r.begin == total, "shard {} starts at {}, the shards before it end at {}", i,
             r.begin, total);
    total = r.end;
  }
  for (size_t i = 0; i < shard_ranges.size(); ++i) {
    LZ_CHECK(shard_ranges[i].begin >= 0 && shard_ranges[i].end <= total,
             "empty shard {} at {} lies outside [0, {})", i, shard_ranges[i].begin, total);
  }
  LZ_CHECK(want.begin >= 0 && want.begin <= want.end && want.end <= total,
           "want [{}, {}) is not inside [0, {})", want.begin, want.end, total);

  std::vector<range_read> reads;
  for (size_t i : order) {
    const flat_range& r = shard_ranges[i];
    const flat_range piece{std::max(r.begin, want.begin), std::min(r.end, want.end)};
    if (piece.size() > 0) reads.push_back({static_cast<int64_t>(i), piece});
  }
  return reads;
}

}  // namespace lz::checkpoint
