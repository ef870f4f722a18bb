// reduce.cpp: bias gradients, sum of squares (for the global gradient norm), scaling.
#include <vector>

#include "kernels/cpu/column_blocks.hpp"
#include "kernels/cpu/ops.hpp"

namespace lz::kernels::cpu {

void bias_backward(float* dbias, const float* dout, int64_t N, int64_t OC) {
  for_each_column_block(OC, 64, [&](int64_t o0, int64_t o1) {
    for (int64_t n = 0; n < N; n++) {
      const float* d = dout + n * OC;
#pragma omp simd
      for (int64_t o = o0; o < o1; o++) dbias[o] += d[o];
    }
  });
}

double sum_squares(const float* x, int64_t n) {
  // Fixed-size chunks summed in float64, then the chunk sums in index order: the result
  // depends on n only, never on how many threads ran.
  constexpr int64_t chunk = 1 << 14;
  const int64_t chunks = (n + chunk - 1) / chunk;
  std::vector<double> partial(static_cast<size_t>(chunks));
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < chunks; k++) {
    const int64_t i0 = k * chunk;
    const int64_t i1 = i0 + chunk < n ? i0 + chunk : n;
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = i0; i < i1; i++) s += static_cast<double>(x[i]) * x[i];
    partial[static_cast<size_t>(k)] = s;
  }
  double total = 0.0;
  for (double p : partial) total += p;
  return total;
}

void scale(float* x, float s, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; i++) x[i] *= s;
}

}  // namespace lz::kernels::cpu
