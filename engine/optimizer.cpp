#include "engine/optimizer.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "config/error.hpp"

namespace lz::engine {

double lr_schedule::at(int64_t step) const {
  if (step < warmup_steps) {
    return lr * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  }
  const double min_lr = lr * min_lr_ratio;
  const int64_t decay_steps = total_steps - warmup_steps;
  if (decay_steps <= 1) return lr;
  const double progress = std::clamp(
      static_cast<double>(step - warmup_steps) / static_cast<double>(decay_steps - 1), 0.0, 1.0);
  return min_lr + 0.5 * (1.0 + std::cos(std::numbers::pi * progress)) * (lr - min_lr);
}

adamw_optimizer::adamw_optimizer(const param_layout& layout, int64_t begin, int64_t end,
                                 const adamw_options& options)
  : layout_(layout), begin_(begin), end_(end), options_(options) {
  LZ_CHECK(0 <= begin && begin <= end && end <= layout.total(), "range [{}, {}) of {}", begin,
           end, layout.total());
  m_.resize(end - begin);
  v_.resize(end - begin);
}

void adamw_optimizer::step(kernels::backend& k, float* params, const float* grads, double lr,
                           int64_t t, float grad_scale,
                           const kernels::adamw_snapshot* snapshot) {
  kernels::adamw_step s{};
  s.lr = static_cast<float>(lr);
  s.beta1 = static_cast<float>(options_.beta1);
  s.beta2 = static_cast<float>(options_.beta2);
  s.eps = static_cast<float>(options_.eps);
  s.bias_correction1 = static_cast<float>(1.0 - std::pow(options_.beta1, static_cast<double>(t)));
  s.bias_correction2 = static_cast<float>(1.0 - std::pow(options_.beta2, static_cast<double>(t)));
  s.grad_scale = grad_scale;
  // One kernel call per tensor segment inside [begin, end), each with its own decay.
  for (const auto& tensor : layout_.tensors()) {
    const int64_t lo = std::max(begin_, tensor.offset);
    const int64_t hi = std::min(end_, tensor.offset + tensor.numel);
    if (lo >= hi) continue;
    s.weight_decay = tensor.decay ? static_cast<float>(options_.weight_decay) : 0.0f;
    const int64_t at = lo - begin_;
    kernels::adamw_snapshot part{};
    if (snapshot != nullptr) {
      part = {snapshot->params + at, snapshot->m + at, snapshot->v + at};
    }
    k.adamw_update(params + lo, grads + lo, m_.data() + at, v_.data() + at, hi - lo, s,
                   snapshot != nullptr ? &part : nullptr);
  }
}

}  // namespace lz::engine
