// rank_assignment.cpp: see rank_assignment.hpp.
#include "actors/rank_assignment.hpp"

#include <cstddef>

namespace lz::actors {

std::vector<int32_t> assign_ranks(const std::vector<int32_t>& slots, int32_t world) {
  std::vector<int32_t> node_of;
  for (int32_t node = 0; node < static_cast<int32_t>(slots.size()); node++) {
    for (int32_t s = 0; s < slots[static_cast<size_t>(node)] &&
                        static_cast<int32_t>(node_of.size()) < world; s++) {
      node_of.push_back(node);
    }
  }
  if (static_cast<int32_t>(node_of.size()) < world) node_of.clear();
  return node_of;
}

}  // namespace lz::actors
