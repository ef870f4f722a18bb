// Which node runs which rank: contiguous ranks per node, in join order.
#include <gtest/gtest.h>

#include "actors/rank_assignment.hpp"

namespace {

using lz::actors::assign_ranks;

TEST(rank_assignment, nodes_take_contiguous_ranks_in_join_order) {
  EXPECT_EQ(assign_ranks({2, 2}, 4), (std::vector<int32_t>{0, 0, 1, 1}));
  EXPECT_EQ(assign_ranks({1, 3}, 4), (std::vector<int32_t>{0, 1, 1, 1}));
  EXPECT_EQ(assign_ranks({8}, 3), (std::vector<int32_t>{0, 0, 0}));
}

TEST(rank_assignment, spare_slots_and_idle_nodes_are_left_over) {
  EXPECT_EQ(assign_ranks({2, 2, 2}, 3), (std::vector<int32_t>{0, 0, 1}));
  EXPECT_EQ(assign_ranks({0, 2}, 2), (std::vector<int32_t>{1, 1}));
}

TEST(rank_assignment, too_few_slots_assign_nothing) {
  EXPECT_TRUE(assign_ranks({1, 1}, 3).empty());
  EXPECT_TRUE(assign_ranks({}, 1).empty());
}

TEST(rank_assignment, every_rank_of_a_large_world_is_placed_exactly_once) {
  const std::vector<int32_t> slots(32, 8);
  const auto node_of = assign_ranks(slots, 256);
  ASSERT_EQ(node_of.size(), 256u);
  std::vector<int> per_node(32, 0);
  for (size_t r = 0; r < node_of.size(); r++) {
    per_node[static_cast<size_t>(node_of[r])]++;
    if (r > 0) {
      EXPECT_GE(node_of[r], node_of[r - 1]);
    }
  }
  for (int n : per_node) EXPECT_EQ(n, 8);
}

}  // namespace
