// The decisions of a memory restore: which step the held copies restore, who reads what
// from whom, and each rank's buddy.
#include <gtest/gtest.h>

#include <random>

#include "checkpoint/memory_snapshot.hpp"
#include "config/error.hpp"

namespace lz::checkpoint {
namespace {

held_range copy(int32_t rank, int32_t which, int64_t step, int64_t begin, int64_t end) {
  return {.rank = rank, .which = which, .step = step, .range = {begin, end}};
}

TEST(memory_restore, the_newest_step_whose_copies_cover_everything) {
  // 3 old ranks over [0, 90): a node with ranks 1 and 2 is lost; rank 0 survives with its
  // own copy and rank 1's replica, both of step 8.
  EXPECT_EQ(newest_covered_step({copy(0, 0, 8, 0, 30), copy(0, 1, 8, 30, 60)}, 90), std::nullopt);
  EXPECT_EQ(newest_covered_step({copy(0, 0, 8, 0, 30), copy(0, 1, 8, 30, 60),
                                 copy(1, 0, 8, 60, 90)}, 90), 8);
  // a newer step held only in part loses to an older step held in full
  EXPECT_EQ(newest_covered_step({copy(0, 0, 9, 0, 30), copy(0, 1, 8, 30, 60),
                                 copy(1, 0, 8, 0, 30), copy(1, 1, 8, 60, 90),
                                 copy(2, 0, 9, 60, 90)}, 90), 8);
  EXPECT_EQ(newest_covered_step({copy(0, 0, 9, 0, 60), copy(1, 0, 9, 40, 90)}, 90), 9);  // overlap
  EXPECT_EQ(newest_covered_step({copy(0, 0, -1, 0, 90)}, 90), std::nullopt);  // nothing held
  EXPECT_EQ(newest_covered_step({}, 90), std::nullopt);
}

TEST(memory_restore, each_rank_reads_its_own_copies_first_then_the_lowest_holder) {
  const std::vector<held_range> held{copy(0, 0, 5, 0, 50), copy(0, 1, 5, 50, 100),
                                     copy(2, 0, 5, 50, 100)};
  // rank 0 wants everything; rank 1 (fresh) wants [40, 60); rank 2 wants [50, 100)
  const auto pieces = plan_memory_restore(held, {{{0, 100}}, {{40, 60}}, {{50, 100}}});
  ASSERT_EQ(pieces.size(), 5u);
  EXPECT_EQ(pieces[0].to, 0); EXPECT_EQ(pieces[0].copy, 0u); EXPECT_EQ(pieces[0].range, (flat_range{0, 50}));
  EXPECT_EQ(pieces[1].to, 0); EXPECT_EQ(pieces[1].copy, 1u); EXPECT_EQ(pieces[1].range, (flat_range{50, 100}));
  EXPECT_EQ(pieces[2].to, 1); EXPECT_EQ(pieces[2].copy, 0u); EXPECT_EQ(pieces[2].range, (flat_range{40, 50}));
  EXPECT_EQ(pieces[3].to, 1); EXPECT_EQ(pieces[3].copy, 1u); EXPECT_EQ(pieces[3].range, (flat_range{50, 60}));
  EXPECT_EQ(pieces[4].to, 2); EXPECT_EQ(pieces[4].copy, 2u); EXPECT_EQ(pieces[4].range, (flat_range{50, 100}));
  EXPECT_THROW(plan_memory_restore(held, {{{0, 101}}}), lz::error);
}

// Random worlds: whatever the copies, the pieces give each rank exactly what it wants, in
// order, each piece from a copy that holds it.
TEST(memory_restore, random_plans_assemble_exactly_the_wanted_ranges) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 300; trial++) {
    const int64_t total = 1 + static_cast<int64_t>(rng() % 200);
    const int world = 1 + static_cast<int>(rng() % 5);
    std::vector<held_range> held;
    int64_t at = 0;
    while (at < total) {  // a partition, then some overlapping extras
      const int64_t end = std::min(total, at + 1 + static_cast<int64_t>(rng() % 60));
      held.push_back(copy(static_cast<int32_t>(rng() % world), 0, 3, at, end));
      at = end;
    }
    for (int extra = 0; extra < 3; extra++) {
      const int64_t b = static_cast<int64_t>(rng() % total);
      held.push_back(copy(static_cast<int32_t>(rng() % world), 1, 3, b,
                          std::min(total, b + 1 + static_cast<int64_t>(rng() % 80))));
    }
    ASSERT_EQ(newest_covered_step(held, total), 3);
    std::vector<std::vector<flat_range>> wanted(static_cast<size_t>(world));
    for (auto& w : wanted) {
      const int64_t b = static_cast<int64_t>(rng() % total);
      w.push_back({0, total});
      w.push_back({b, b + static_cast<int64_t>(rng() % (total - b + 1))});
    }
    const auto pieces = plan_memory_restore(held, wanted);
    size_t p = 0;
    for (int to = 0; to < world; to++) {
      for (const flat_range& w : wanted[static_cast<size_t>(to)]) {
        int64_t reached = w.begin;
        while (reached < w.end) {
          ASSERT_LT(p, pieces.size());
          const memory_piece& piece = pieces[p++];
          ASSERT_EQ(piece.to, to);
          ASSERT_EQ(piece.range.begin, reached);
          const flat_range& h = held[piece.copy].range;
          ASSERT_TRUE(h.begin <= piece.range.begin && piece.range.end <= h.end);
          reached = piece.range.end;
        }
        ASSERT_EQ(reached, w.end);
      }
    }
    ASSERT_EQ(p, pieces.size());
  }
}

TEST(memory_restore, buddies_sit_on_another_node_whenever_one_exists) {
  EXPECT_EQ(replica_shift({0}), 0);
  EXPECT_EQ(replica_shift({0, 0}), 1);          // one node: the next rank all the same
  EXPECT_EQ(replica_shift({0, 0, 1, 1}), 2);    // two nodes of two: across
  EXPECT_EQ(replica_shift({0, 1, 0, 1}), 1);
  EXPECT_EQ(replica_shift({0, 0, 0, 1}), 1);    // uneven: as many across as can be
  const std::vector<int32_t> nodes{0, 0, 1, 1, 2, 2};
  const int32_t s = replica_shift(nodes);
  for (int r = 0; r < 6; r++) EXPECT_NE(nodes[static_cast<size_t>(r)], nodes[static_cast<size_t>((r + s) % 6)]);
}

}  // namespace
}  // namespace lz::checkpoint
