// rank_assignment.hpp: which node runs which rank (a pure function).
#pragma once

#include <cstdint>
#include <vector>

namespace lz::actors {

// Ranks 0..world-1 onto nodes offering `slots[i]` slots each, in the order the nodes
// joined: node 0 takes the first ranks up to its slots, node 1 the next, and so on, so the
// ranks of a node are contiguous (and so are the slots of the data plan they train). The
// result holds the node index of each rank; empty when the slots are fewer than `world`.
std::vector<int32_t> assign_ranks(const std::vector<int32_t>& slots, int32_t world);

}  // namespace lz::actors
