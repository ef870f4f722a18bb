// adamw.cpp: AdamW with decoupled weight decay (Loshchilov & Hutter), bias-corrected.
#include <cmath>

#include "kernels/cpu/ops.hpp"

namespace lz::kernels::cpu {

void adamw_update(float* params, const float* grads, float* m, float* v, int64_t n,
                  const adamw_step& step) {
  const float b1 = step.beta1, b2 = step.beta2;
  const float inv_bc1 = 1.0f / step.bias_correction1;
  const float inv_bc2 = 1.0f / step.bias_correction2;
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; i++) {
    const float g = grads[i] * step.grad_scale;
    const float mi = b1 * m[i] + (1.0f - b1) * g;
    const float vi = b2 * v[i] + (1.0f - b2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const float mhat = mi * inv_bc1;
    const float vhat = vi * inv_bc2;
    params[i] -= step.lr * (mhat / (std::sqrt(vhat) + step.eps) + step.weight_decay * params[i]);
  }
}

}  // namespace lz::kernels::cpu
