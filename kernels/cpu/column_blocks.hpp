// column_blocks.hpp: the pattern behind every reduction over rows (bias, layernorm and
// embedding gradients): threads split the columns into blocks, and each block walks all
// rows in order, so the sums are race-free and do not depend on the thread count.
#pragma once

#include <algorithm>
#include <cstdint>

namespace lz::kernels::cpu {

// Calls body(c0, c1) for the blocks [c0, c1) of `block` columns of [0, C), spread over the
// OpenMP threads.
template <typename Body>
void for_each_column_block(int64_t C, int64_t block, const Body& body) {
  const int64_t blocks = (C + block - 1) / block;
#pragma omp parallel for schedule(static)
  for (int64_t cb = 0; cb < blocks; cb++) {
    const int64_t c0 = cb * block;
    body(c0, std::min(c0 + block, C));
  }
}

}  // namespace lz::kernels::cpu
