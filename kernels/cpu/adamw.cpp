// adamw.cpp: AdamW with decoupled weight decay (Loshchilov & Hutter), bias-corrected.
#include <cmath>

#include "kernels/cpu/ops.hpp"

namespace lz::kernels::cpu {

namespace {

// One element's update; inlined into both loops below, each of which vectorises.
inline void update_one(float* params, const float* grads, float* m, float* v, int64_t i,
                       const adamw_step& step, float inv_bc1, float inv_bc2) {
  const float b1 = step.beta1, b2 = step.beta2;
  const float g = grads[i] * step.grad_scale;
  const float mi = b1 * m[i] + (1.0f - b1) * g;
  const float vi = b2 * v[i] + (1.0f - b2) * g * g;
  m[i] = mi;
  v[i] = vi;
  const float mhat = mi * inv_bc1;
  const float vhat = vi * inv_bc2;
  params[i] -= step.lr * (mhat / (std::sqrt(vhat) + step.eps) + step.weight_decay * params[i]);
}

}  // namespace

void adamw_update(float* params, const float* grads, float* m, float* v, int64_t n,
                  const adamw_step& step, const adamw_snapshot* snapshot) {
  const float inv_bc1 = 1.0f / step.bias_correction1;
  const float inv_bc2 = 1.0f / step.bias_correction2;
  if (snapshot == nullptr) {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) update_one(params, grads, m, v, i, step, inv_bc1, inv_bc2);
    return;
  }
  // The pass reads every value anyway: writing the old ones out costs only the writes
  // (measured: about +30% of this memory-bound kernel; non-temporal stores in cache-sized
  // blocks were no faster on a 2-core machine).
  float* sp = snapshot->params;
  float* sm = snapshot->m;
  float* sv = snapshot->v;
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; i++) {
    sp[i] = params[i];
    sm[i] = m[i];
    sv[i] = v[i];
    update_one(params, grads, m, v, i, step, inv_bc1, inv_bc2);
  }
}

}  // namespace lz::kernels::cpu
