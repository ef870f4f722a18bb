// attention.cpp: causal multi-head self-attention on a packed qkv tensor.
//
// qkv (B, T, 3C) holds q | k | v per token; head h uses channels [h*hs, (h+1)*hs) of each,
// hs = C / NH. Each (b, h) pair is independent and runs on one thread.
#include <cmath>
#include <vector>

#include "kernels/cpu/fast_math.hpp"
#include "kernels/cpu/ops.hpp"

namespace lz::kernels::cpu {

void attention_forward(float* out, float* att, const float* qkv, int64_t B, int64_t T,
                       int64_t C, int64_t NH) {
  const int64_t hs = C / NH;
  const int64_t C3 = 3 * C;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hs));
#pragma omp parallel for schedule(static)
  for (int64_t bh = 0; bh < B * NH; bh++) {
    const int64_t b = bh / NH, h = bh % NH;
    const float* base = qkv + b * T * C3 + h * hs;
    for (int64_t t = 0; t < T; t++) {
      const float* q = base + t * C3;                 // (hs,)
      float* row = att + (bh * T + t) * T;            // (T,)
      float maxv = -INFINITY;
      for (int64_t t2 = 0; t2 <= t; t2++) {
        const float* k = base + t2 * C3 + C;          // (hs,)
        float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
        for (int64_t i = 0; i < hs; i++) dot += q[i] * k[i];
        row[t2] = dot * scale;
        maxv = row[t2] > maxv ? row[t2] : maxv;
      }
      float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
      for (int64_t t2 = 0; t2 <= t; t2++) {
        row[t2] = fast_expf(row[t2] - maxv);
        sum += row[t2];
      }
      const float inv = 1.0f / sum;
#pragma omp simd
      for (int64_t t2 = 0; t2 < T; t2++) row[t2] = t2 <= t ? row[t2] * inv : 0.0f;

      float* o = out + (b * T + t) * C + h * hs;     // (hs,)
#pragma omp simd
      for (int64_t i = 0; i < hs; i++) o[i] = 0.0f;
      for (int64_t t2 = 0; t2 <= t; t2++) {
        const float* v = base + t2 * C3 + 2 * C;
        const float a = row[t2];
#pragma omp simd
        for (int64_t i = 0; i < hs; i++) o[i] += a * v[i];
      }
    }
  }
}

void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* att,
                        int64_t B, int64_t T, int64_t C, int64_t NH) {
  const int64_t hs = C / NH;
  const int64_t C3 = 3 * C;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hs));
#pragma omp parallel
  {
    std::vector<float> datt(static_cast<size_t>(T));  // one row of d(att), per thread
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < B * NH; bh++) {
      const int64_t b = bh / NH, h = bh % NH;
      const float* base = qkv + b * T * C3 + h * hs;
      float* dbase = dqkv + b * T * C3 + h * hs;
      for (int64_t t = 0; t < T; t++) {
        float* d = dbase + t * C3;
#pragma omp simd
        for (int64_t i = 0; i < hs; i++) d[i] = d[C + i] = d[2 * C + i] = 0.0f;
      }
      for (int64_t t = 0; t < T; t++) {
        const float* row = att + (bh * T + t) * T;   // (T,)
        const float* dy = dout + (b * T + t) * C + h * hs;
        // d(att)[t2] = dy . v_t2 and dv_t2 += att[t][t2] dy
        float weighted = 0.0f;  // sum_t2 att * datt, the softmax Jacobian's shared term
        for (int64_t t2 = 0; t2 <= t; t2++) {
          const float* v = base + t2 * C3 + 2 * C;
          float* dv = dbase + t2 * C3 + 2 * C;
          const float a = row[t2];
          float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
          for (int64_t i = 0; i < hs; i++) {
            dot += dy[i] * v[i];
            dv[i] += a * dy[i];
          }
          datt[t2] = dot;
          weighted += a * dot;
        }
        // through softmax and the 1/sqrt(hs) scale into q and k
        const float* q = base + t * C3;
        float* dq = dbase + t * C3;
        for (int64_t t2 = 0; t2 <= t; t2++) {
          const float dpre = row[t2] * (datt[t2] - weighted) * scale;
          const float* k = base + t2 * C3 + C;
          float* dk = dbase + t2 * C3 + C;
#pragma omp simd
          for (int64_t i = 0; i < hs; i++) {
            dq[i] += dpre * k[i];
            dk[i] += dpre * q[i];
          }
        }
      }
    }
  }
}

}  // namespace lz::kernels::cpu
