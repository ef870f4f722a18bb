// gelu.cpp: GELU with GPT-2's tanh approximation, and residual addition.
#include <cmath>

#include "kernels/cpu/fast_math.hpp"
#include "kernels/cpu/ops.hpp"

namespace lz::kernels::cpu {

namespace {
constexpr float k_sqrt_2_over_pi = 0.7978845608028654f;
constexpr float k_cube = 0.044715f;
}  // namespace

void gelu_forward(float* out, const float* inp, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; i++) {
    const float x = inp[i];
    const float u = k_sqrt_2_over_pi * (x + k_cube * x * x * x);
    out[i] = 0.5f * x * (1.0f + fast_tanhf(u));
  }
}

void gelu_backward(float* dinp, const float* inp, const float* dout, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; i++) {
    const float x = inp[i];
    const float u = k_sqrt_2_over_pi * (x + k_cube * x * x * x);
    const float th = fast_tanhf(u);
    const float sech2 = 1.0f - th * th;
    const float du = k_sqrt_2_over_pi * (1.0f + 3.0f * k_cube * x * x);
    dinp[i] = (0.5f * (1.0f + th) + 0.5f * x * sech2 * du) * dout[i];
  }
}

void residual_forward(float* out, const float* a, const float* b, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

}  // namespace lz::kernels::cpu
