// crossentropy.cpp: softmax over the real vocabulary and the cross-entropy loss, in place
// on the (N, Vp) logits so the largest activation of the model is allocated once.
#include <cmath>

#include "kernels/cpu/fast_math.hpp"
#include "kernels/cpu/ops.hpp"

namespace lz::kernels::cpu {

void softmax_crossentropy_forward(float* losses, float* logits_to_probs,
                                  const int32_t* targets, int64_t N, int64_t V, int64_t Vp) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; n++) {
    float* row = logits_to_probs + n * Vp;  // (Vp,)
    float maxv = -INFINITY;
#pragma omp simd reduction(max : maxv)
    for (int64_t i = 0; i < V; i++) maxv = row[i] > maxv ? row[i] : maxv;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < V; i++) {
      row[i] = fast_expf(row[i] - maxv);
      sum += row[i];
    }
    const float inv = 1.0f / sum;
#pragma omp simd
    for (int64_t i = 0; i < V; i++) row[i] *= inv;
    for (int64_t i = V; i < Vp; i++) row[i] = 0.0f;
    if (targets != nullptr) {
      // -log p computed from the logit margin would need the logits; the probability is
      // floored instead so a vanishing one gives a large finite loss, not inf.
      const float p = row[targets[n]];
      losses[n] = -std::log(p > 1e-30f ? p : 1e-30f);
    }
  }
}

void softmax_crossentropy_backward(float* probs_to_dlogits, const int32_t* targets,
                                   float dloss, int64_t N, int64_t V, int64_t Vp) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; n++) {
    float* row = probs_to_dlogits + n * Vp;
#pragma omp simd
    for (int64_t i = 0; i < V; i++) row[i] *= dloss;
    row[targets[n]] -= dloss;
    for (int64_t i = V; i < Vp; i++) row[i] = 0.0f;
  }
}

}  // namespace lz::kernels::cpu
