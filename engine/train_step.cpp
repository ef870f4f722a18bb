#include "engine/train_step.hpp"

#include <cmath>

#include "config/error.hpp"

namespace lz::engine {

train_step::train_step(gpt2& model, adamw_optimizer& optimizer, train_batcher& batcher,
                       const lr_schedule& schedule, const train_step_options& options)
  : model_(model), optimizer_(optimizer), batcher_(batcher), schedule_(schedule),
    options_(options) {
  LZ_CHECK(0 <= options.slot_begin && options.slot_begin < options.slot_end &&
               options.slot_end <= options.slots,
           "slots [{}, {}) of {}", options.slot_begin, options.slot_end, options.slots);
  const auto n = static_cast<size_t>(options.micro_batch * options.seq_len);
  inputs_.resize(n);
  targets_.resize(n);
}

step_result train_step::run(int64_t step) {
  const int64_t B = options_.micro_batch, T = options_.seq_len;
  const int64_t global_tokens = options_.slots * B * T;
  const float dloss = 1.0f / static_cast<float>(global_tokens);

  model_.zero_grad();
  double loss_sum = 0.0;  // sum over this rank's slots of the slot's mean loss
  for (int64_t slot = options_.slot_begin; slot < options_.slot_end; slot++) {
    batcher_.fill(step, slot, inputs_.data(), targets_.data());
    const float loss = model_.forward(inputs_.data(), targets_.data(), B, T);
    if (!std::isfinite(loss)) {
      LZ_THROW(lz::error, "non-finite loss {} at step {} slot {}: the step is discarded; "
               "lower optimizer.lr or raise optimizer.warmup_steps", loss, step, slot);
    }
    loss_sum += loss;
    model_.backward(dloss);
  }

  kernels::backend& k = model_.backend();
  const double norm = std::sqrt(k.sum_squares(model_.grads(), model_.num_params()));
  if (!std::isfinite(norm)) {
    LZ_THROW(lz::error, "non-finite gradient norm at step {}: the step is discarded", step);
  }
  float grad_scale = 1.0f;
  if (options_.grad_clip > 0.0 && norm > options_.grad_clip) {
    grad_scale = static_cast<float>(options_.grad_clip / (norm + 1e-6));
  }
  const double lr = schedule_.at(step);
  if (before_update_) before_update_();
  optimizer_.step(k, model_.params(), model_.grads(), lr, step + 1, grad_scale,
                  snapshot_ ? &*snapshot_ : nullptr);
  snapshot_.reset();

  step_result r;
  r.step = step;
  r.loss = loss_sum / static_cast<double>(options_.slots);
  r.grad_norm = norm;
  r.lr = lr;
  r.tokens = global_tokens;
  return r;
}

std::optional<double> evaluate(gpt2& model, const token_dataset& val, int64_t batches,
                               int64_t micro_batch, int64_t seq_len,
                               const std::function<bool()>& stop) {
  const auto n = static_cast<size_t>(micro_batch * seq_len);
  std::vector<int32_t> inputs(n), targets(n);
  double sum = 0.0;
  for (int64_t i = 0; i < batches; i++) {
    if (stop && stop()) return std::nullopt;
    fill_val(val, i, micro_batch, seq_len, inputs.data(), targets.data());
    sum += model.forward(inputs.data(), targets.data(), micro_batch, seq_len);
  }
  return sum / static_cast<double>(batches);
}

}  // namespace lz::engine
