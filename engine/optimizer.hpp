// optimizer.hpp: the learning-rate schedule and sharded AdamW.
//
// adamw_optimizer owns the moments of one contiguous range [begin, end) of the flat
// parameter vector (ZeRO-1: each rank owns one range; a single rank owns everything).
#pragma once

#include <cstdint>

#include "engine/aligned_buffer.hpp"
#include "engine/param_layout.hpp"
#include "kernels/backend.hpp"

namespace lz::engine {

// Linear warmup to lr over warmup_steps, then cosine decay to lr * min_lr_ratio at the last
// step. Steps count from 0.
struct lr_schedule {
  double lr = 1e-3;
  double min_lr_ratio = 0.1;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  double at(int64_t step) const;
};

struct adamw_options {
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.0;  // decoupled; matrices only (param_tensor::decay)
};

class adamw_optimizer {
public:
  adamw_optimizer(const param_layout& layout, int64_t begin, int64_t end,
                  const adamw_options& options);

  // Updates params[begin, end) from grads[begin, end) (full flat vectors are passed) as
  // optimizer step t (1-based, for the bias corrections), gradients scaled by grad_scale.
  // snapshot (nullable) receives params, m and v of [begin, end) as they were before it.
  void step(kernels::backend& k, float* params, const float* grads, double lr, int64_t t,
            float grad_scale, const kernels::adamw_snapshot* snapshot = nullptr);

  int64_t begin() const { return begin_; }
  int64_t end() const { return end_; }
  float* m() { return m_.data(); }  // (end - begin) first moments
  float* v() { return v_.data(); }  // (end - begin) second moments
  const float* m() const { return m_.data(); }
  const float* v() const { return v_.data(); }

private:
  const param_layout& layout_;
  int64_t begin_, end_;
  adamw_options options_;
  aligned_buffer m_, v_;
};

}  // namespace lz::engine
