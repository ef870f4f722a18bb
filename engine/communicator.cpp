// communicator.cpp: what every communicator shares.
#include "engine/communicator.hpp"

#include <numeric>

namespace lz::engine {

std::vector<int64_t> prefix_offsets(const std::vector<int64_t>& counts) {
  std::vector<int64_t> offsets(counts.size() + 1, 0);
  std::partial_sum(counts.begin(), counts.end(), offsets.begin() + 1);
  return offsets;
}

}  // namespace lz::engine
