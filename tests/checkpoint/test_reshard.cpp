// Ownership ranges and resharding plans: who owns which elements, and which pieces a new
// rank reads from the shards of an old world.
#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

#include "checkpoint/reshard.hpp"

namespace {

using lz::checkpoint::flat_range;
using lz::checkpoint::plan_reads;
using lz::checkpoint::range_read;
using lz::checkpoint::shard_range;

std::vector<flat_range> ranges_of(int64_t total, int64_t world) {
  std::vector<flat_range> out;
  for (int64_t r = 0; r < world; ++r) out.push_back(shard_range(total, world, r));
  return out;
}

TEST(shard_range, ranks_partition_the_flat_vector_in_rank_order) {
  for (int64_t total : {0, 1, 2, 7, 10007, 124439808}) {
    for (int64_t world = 1; world <= 9; ++world) {
      int64_t next = 0;
      for (const flat_range& r : ranges_of(total, world)) {
        EXPECT_EQ(r.begin, next) << "total " << total << " world " << world;
        EXPECT_LE(r.begin, r.end);
        next = r.end;
      }
      EXPECT_EQ(next, total) << "world " << world;
    }
  }
}

TEST(shard_range, sizes_differ_by_at_most_one_and_the_first_ranks_hold_the_extra) {
  for (int64_t total : {5, 10007, 1000000}) {
    for (int64_t world = 1; world <= 9; ++world) {
      const auto ranges = ranges_of(total, world);
      for (int64_t r = 0; r < world; ++r) {
        const int64_t want = total / world + (r < total % world ? 1 : 0);
        EXPECT_EQ(ranges[static_cast<size_t>(r)].size(), want) << "rank " << r << " of " << world;
      }
    }
  }
}

TEST(shard_range, a_total_smaller_than_the_world_leaves_the_last_ranks_empty) {
  const auto ranges = ranges_of(3, 5);
  EXPECT_EQ(ranges[0], (flat_range{0, 1}));
  EXPECT_EQ(ranges[2], (flat_range{2, 3}));
  EXPECT_EQ(ranges[3], (flat_range{3, 3}));
  EXPECT_EQ(ranges[4], (flat_range{3, 3}));
  for (const flat_range& r : ranges_of(0, 4)) EXPECT_EQ(r.size(), 0);
}

TEST(plan_reads, the_same_world_reads_each_rank_from_its_own_shard) {
  const auto old_ranges = ranges_of(10007, 3);
  for (int64_t r = 0; r < 3; ++r) {
    const auto reads = plan_reads(old_ranges, shard_range(10007, 3, r));
    ASSERT_EQ(reads.size(), 1u);
    EXPECT_EQ(reads[0].rank, r);
    EXPECT_EQ(reads[0].range, shard_range(10007, 3, r));
  }
}

TEST(plan_reads, shrinking_from_four_ranks_to_one_reads_every_shard_in_order) {
  const auto reads = plan_reads(ranges_of(10, 4), {0, 10});
  ASSERT_EQ(reads.size(), 4u);
  const flat_range expected[] = {{0, 3}, {3, 6}, {6, 8}, {8, 10}};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(reads[i].rank, static_cast<int64_t>(i));
    EXPECT_EQ(reads[i].range, expected[i]);
  }
}

TEST(plan_reads, growing_from_two_ranks_to_three_splits_at_the_old_boundary) {
  // old: [0, 5) [5, 10); new rank 1 of 3 wants [4, 7).
  const auto reads = plan_reads(ranges_of(10, 2), shard_range(10, 3, 1));
  ASSERT_EQ(reads.size(), 2u);
  EXPECT_EQ(reads[0].rank, 0);
  EXPECT_EQ(reads[0].range, (flat_range{4, 5}));
  EXPECT_EQ(reads[1].rank, 1);
  EXPECT_EQ(reads[1].range, (flat_range{5, 7}));
}

TEST(plan_reads, pieces_tile_the_wanted_range_for_every_world_pair) {
  for (int64_t total : {1, 3, 10007}) {
    for (int64_t w = 1; w <= 5; ++w) {
      const auto old_ranges = ranges_of(total, w);
      for (int64_t w2 = 1; w2 <= 5; ++w2) {
        for (int64_t r = 0; r < w2; ++r) {
          const flat_range want = shard_range(total, w2, r);
          int64_t next = want.begin;
          for (const range_read& piece : plan_reads(old_ranges, want)) {
            EXPECT_EQ(piece.range.begin, next);
            EXPECT_GT(piece.range.size(), 0);
            const flat_range& held = old_ranges[static_cast<size_t>(piece.rank)];
            EXPECT_GE(piece.range.begin, held.begin);
            EXPECT_LE(piece.range.end, held.end);
            next = piece.range.end;
          }
          EXPECT_EQ(next, want.end) << total << " " << w << "->" << w2 << " rank " << r;
        }
      }
    }
  }
}

TEST(plan_reads, an_empty_want_needs_no_reads) {
  EXPECT_TRUE(plan_reads(ranges_of(10, 3), {4, 4}).empty());
  EXPECT_TRUE(plan_reads(ranges_of(3, 5), shard_range(3, 5, 4)).empty());
}

TEST(plan_reads, ranges_listed_out_of_element_order_still_plan_in_element_order) {
  const std::vector<flat_range> shuffled = {{6, 10}, {0, 2}, {2, 6}};
  const auto reads = plan_reads(shuffled, {1, 8});
  ASSERT_EQ(reads.size(), 3u);
  EXPECT_EQ(reads[0].rank, 1);
  EXPECT_EQ(reads[0].range, (flat_range{1, 2}));
  EXPECT_EQ(reads[1].rank, 2);
  EXPECT_EQ(reads[2].rank, 0);
  EXPECT_EQ(reads[2].range, (flat_range{6, 8}));
}

TEST(plan_reads_death, ranges_with_a_gap_or_a_want_outside_are_bugs_that_abort) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(plan_reads({{0, 4}, {5, 10}}, {0, 10}), "internal check failed");
  EXPECT_DEATH(plan_reads({{0, 4}, {3, 10}}, {0, 10}), "internal check failed");
  EXPECT_DEATH(plan_reads(ranges_of(10, 2), {5, 11}), "internal check failed");
}

}  // namespace
