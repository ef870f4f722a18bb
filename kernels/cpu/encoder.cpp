// encoder.cpp: token + position embedding and its backward.
#include "kernels/cpu/column_blocks.hpp"
#include "kernels/cpu/ops.hpp"

namespace lz::kernels::cpu {

void encoder_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe,
                     int64_t B, int64_t T, int64_t C) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < B * T; n++) {
    const int64_t t = n % T;
    const float* te = wte + static_cast<int64_t>(tokens[n]) * C;  // (C,)
    const float* pe = wpe + t * C;                                // (C,)
    float* o = out + n * C;
#pragma omp simd
    for (int64_t c = 0; c < C; c++) o[c] = te[c] + pe[c];
  }
}

void encoder_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens,
                      int64_t B, int64_t T, int64_t C) {
  // dwte: rows collide when a token repeats, so threads split the channels and each walks
  // all rows in order: race-free and independent of the thread count.
  for_each_column_block(C, 16, [&](int64_t c0, int64_t c1) {
    for (int64_t n = 0; n < B * T; n++) {
      float* dst = dwte + static_cast<int64_t>(tokens[n]) * C;
      const float* src = dout + n * C;
      for (int64_t c = c0; c < c1; c++) dst[c] += src[c];
    }
  });
  // dwpe: position t gathers its B rows in batch order.
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < T; t++) {
    float* dst = dwpe + t * C;
    for (int64_t b = 0; b < B; b++) {
      const float* src = dout + (b * T + t) * C;
#pragma omp simd
      for (int64_t c = 0; c < C; c++) dst[c] += src[c];
    }
  }
}

}  // namespace lz::kernels::cpu
