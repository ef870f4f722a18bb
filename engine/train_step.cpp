#include "engine/train_step.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <utility>

#include "config/error.hpp"

namespace lz::engine {

namespace {

// a += b, elementwise (the order of a sum of two is fixed).
void add_into(float* a, const float* b, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; i++) a[i] += b[i];
}

using node_key = std::pair<int64_t, int64_t>;
node_key key_of(slot_node n) { return {n.begin, n.end}; }

}  // namespace

owned_range owner_range(int64_t total, int world, int rank) {
  LZ_CHECK(world >= 1 && rank >= 0 && rank < world, "rank {} of {}", rank, world);
  const int64_t chunks = (total + k_norm_chunk - 1) / k_norm_chunk;
  const int64_t first = chunks * rank / world, last = chunks * (rank + 1) / world;
  return {std::min(total, first * k_norm_chunk), std::min(total, last * k_norm_chunk)};
}

train_step::train_step(gpt2& model, adamw_optimizer& optimizer, batch_source& batcher,
                       const lr_schedule& schedule, const train_step_options& options,
                       communicator& comm)
  : model_(model), optimizer_(optimizer), batcher_(batcher), schedule_(schedule),
    options_(options), comm_(comm) {
  const int world = comm.world_size();
  LZ_CHECK(options.slots >= 1, "slots {}", options.slots);
  my_slots_ = slot_range(options.slots, world, comm.rank());
  for (int r = 0; r < world; r++) {
    ranges_.push_back(owner_range(model.num_params(), world, r));
    const slot_node slots = slot_range(options.slots, world, r);
    subtrees_.push_back(maximal_subtrees(options.slots, slots.begin, slots.end));
  }
  LZ_CHECK(optimizer.begin() == owned().begin && optimizer.end() == owned().end,
           "the optimizer owns [{}, {}) but rank {} of {} owns [{}, {})", optimizer.begin(),
           optimizer.end(), comm.rank(), world, owned().begin, owned().end);
  const auto n = static_cast<size_t>(options.micro_batch * options.seq_len);
  inputs_.resize(n);
  targets_.resize(n);
}

int train_step::acquire() {
  if (free_.empty()) {
    pool_.emplace_back(model_.num_params());
    return static_cast<int>(pool_.size()) - 1;
  }
  const int i = free_.back();
  free_.pop_back();
  return i;
}

void train_step::release(int index) { free_.push_back(index); }

void train_step::local_subtrees(int64_t step, float dloss) {
  const int64_t B = options_.micro_batch, T = options_.seq_len, P = model_.num_params();
  using value = std::pair<int, double>;  // (pool_ index of the gradient, loss)
  subtree_builder<value> builder(options_.slots, my_slots_.begin, my_slots_.end,
                                 [this, P](value& left, value&& right) {
                                   add_into(pool_[static_cast<size_t>(left.first)].data(),
                                            pool_[static_cast<size_t>(right.first)].data(), P);
                                   release(right.first);
                                   left.second += right.second;
                                 });
  for (int64_t slot = my_slots_.begin; slot < my_slots_.end; slot++) {
    batcher_.fill(step, slot, inputs_.data(), targets_.data());
    model_.zero_grad();
    const float loss = model_.forward(inputs_.data(), targets_.data(), B, T);
    model_.backward(dloss);
    const int index = acquire();
    model_.swap_grads(pool_[static_cast<size_t>(index)]);  // the slot's gradient, kept
    builder.push(slot, {index, static_cast<double>(loss)});
  }
  parts_.clear();
  part_losses_.clear();
  for (auto& [index, loss] : builder.take()) {
    parts_.push_back(index);
    part_losses_.push_back(loss);
  }
}

void train_step::reduce_exact() {
  const int world = comm_.world_size();
  if (world == 1) {  // the only subtree is the root: it is the gradient
    model_.swap_grads(pool_[static_cast<size_t>(parts_.front())]);
    release(parts_.front());
    return;
  }
  // Round k: every rank sends the owner of each range its k-th subtree's slice of it.
  const owned_range mine = owned();
  size_t rounds = 0, total_parts = 0;
  for (const auto& t : subtrees_) {
    rounds = std::max(rounds, t.size());
    total_parts += t.size();
  }
  std::vector<float> received(total_parts * static_cast<size_t>(mine.size()));
  std::map<node_key, const float*> part_at;
  std::vector<int64_t> send_counts(static_cast<size_t>(world)), recv_counts(send_counts);
  float* at = received.data();
  for (size_t k = 0; k < rounds; k++) {
    const bool sending = k < parts_.size();
    for (int r = 0; r < world; r++) {
      const auto i = static_cast<size_t>(r);
      send_counts[i] = sending ? ranges_[i].size() : 0;
      recv_counts[i] = k < subtrees_[i].size() ? mine.size() : 0;
    }
    const float* send = sending ? pool_[static_cast<size_t>(parts_[k])].data() : nullptr;
    comm_.all_to_all_v(send, send_counts, at, recv_counts);
    for (int r = 0; r < world; r++) {
      if (k >= subtrees_[static_cast<size_t>(r)].size()) continue;
      part_at[key_of(subtrees_[static_cast<size_t>(r)][k])] = at;
      at += mine.size();
    }
  }
  for (int index : parts_) release(index);
  // Add the parts up the tree over this rank's range, into the model's gradient buffer.
  struct handle {
    const float* data;
    int scratch;  // index into scratch, or -1 for a received part
  };
  std::vector<std::vector<float>> scratch;
  std::vector<int> free_scratch;
  std::map<node_key, handle> parts;
  for (const auto& [key, data] : part_at) parts[key] = {data, -1};
  const handle root = tree_sum<handle>(
      options_.slots,
      [&](slot_node n) -> const handle* {
        const auto it = parts.find(key_of(n));
        return it == parts.end() ? nullptr : &it->second;
      },
      [&](const handle& a, const handle& b) -> handle {
        int out = a.scratch;  // reuse the left's scratch when it has one
        if (out < 0) {
          if (free_scratch.empty()) {
            scratch.emplace_back(static_cast<size_t>(mine.size()));
            out = static_cast<int>(scratch.size()) - 1;
          } else {
            out = free_scratch.back();
            free_scratch.pop_back();
          }
          std::copy(a.data, a.data + mine.size(), scratch[static_cast<size_t>(out)].data());
        }
        add_into(scratch[static_cast<size_t>(out)].data(), b.data, mine.size());
        if (b.scratch >= 0) free_scratch.push_back(b.scratch);
        return {scratch[static_cast<size_t>(out)].data(), out};
      });
  std::copy(root.data, root.data + mine.size(), model_.grads() + mine.begin);
}

double train_step::global_loss_exact() {
  const int world = comm_.world_size();
  std::vector<int64_t> counts;
  for (const auto& t : subtrees_) counts.push_back(static_cast<int64_t>(t.size()));
  const std::vector<int64_t> at = prefix_offsets(counts);
  std::vector<double> all(static_cast<size_t>(at.back()));
  std::copy(part_losses_.begin(), part_losses_.end(),
            all.begin() + at[static_cast<size_t>(comm_.rank())]);
  comm_.all_gather_v(all.data(), counts);
  std::map<node_key, double> parts;
  for (int r = 0; r < world; r++) {
    for (size_t k = 0; k < subtrees_[static_cast<size_t>(r)].size(); k++) {
      parts[key_of(subtrees_[static_cast<size_t>(r)][k])] =
          all[static_cast<size_t>(at[static_cast<size_t>(r)]) + k];
    }
  }
  return tree_sum<double>(
      options_.slots,
      [&](slot_node n) -> const double* {
        const auto it = parts.find(key_of(n));
        return it == parts.end() ? nullptr : &it->second;
      },
      [](const double& a, const double& b) { return a + b; });
}

void train_step::reduce_fast(int64_t step, float dloss) {
  const int64_t B = options_.micro_batch, T = options_.seq_len;
  model_.zero_grad();
  local_loss_ = 0.0;
  for (int64_t slot = my_slots_.begin; slot < my_slots_.end; slot++) {
    batcher_.fill(step, slot, inputs_.data(), targets_.data());
    local_loss_ += model_.forward(inputs_.data(), targets_.data(), B, T);
    model_.backward(dloss);
  }
  if (comm_.world_size() > 1) comm_.all_reduce_sum(model_.grads(), model_.num_params());
}

double train_step::global_norm() {
  // Sums of squares per fixed chunk of this rank's range, gathered and added in chunk order.
  kernels::backend& k = model_.backend();
  const owned_range mine = owned();
  std::vector<int64_t> counts;
  for (const owned_range& r : ranges_) {
    counts.push_back((r.size() + k_norm_chunk - 1) / k_norm_chunk);
  }
  const std::vector<int64_t> at = prefix_offsets(counts);
  std::vector<double> sums(static_cast<size_t>(at.back()));
  size_t i = static_cast<size_t>(at[static_cast<size_t>(comm_.rank())]);
  for (int64_t c = mine.begin; c < mine.end; c += k_norm_chunk) {
    sums[i++] = k.sum_squares(model_.grads() + c, std::min(k_norm_chunk, mine.end - c));
  }
  if (comm_.world_size() > 1) comm_.all_gather_v(sums.data(), counts);
  double total = 0.0;
  for (double v : sums) total += v;
  return std::sqrt(total);
}

step_result train_step::run(int64_t step) {
  const int64_t B = options_.micro_batch, T = options_.seq_len;
  const int64_t global_tokens = options_.slots * B * T;
  const float dloss = 1.0f / static_cast<float>(global_tokens);
  step_result r;
  r.step = step;
  r.tokens = global_tokens;
  r.lr = schedule_.at(step);

  double loss_sum = 0.0;  // of the slots' mean token losses
  if (options_.mode == reduction::exact) {
    local_subtrees(step, dloss);
    if (inject_nan_ && !part_losses_.empty()) part_losses_.front() = std::nan("");
    loss_sum = global_loss_exact();
    reduce_exact();
  } else {
    reduce_fast(step, dloss);
    std::vector<double> losses(static_cast<size_t>(comm_.world_size()), 0.0);
    losses[static_cast<size_t>(comm_.rank())] = inject_nan_ ? std::nan("") : local_loss_;
    comm_.all_gather_v(losses.data(), std::vector<int64_t>(losses.size(), 1));
    for (double l : losses) loss_sum += l;
  }
  inject_nan_ = false;
  r.loss = loss_sum / static_cast<double>(options_.slots);
  r.grad_norm = global_norm();
  // Every rank holds the same loss and norm, so every rank takes the same decision.
  if (!std::isfinite(r.loss) || !std::isfinite(r.grad_norm)) {
    r.discarded = true;
    r.why = fmt::format("non-finite {} at step {} (loss {}, gradient norm {})",
                        std::isfinite(r.loss) ? "gradient norm" : "loss", step, r.loss,
                        r.grad_norm);
    snapshot_.reset();
    return r;
  }
  float grad_scale = 1.0f;
  if (options_.grad_clip > 0.0 && r.grad_norm > options_.grad_clip) {
    grad_scale = static_cast<float>(options_.grad_clip / (r.grad_norm + 1e-6));
  }
  if (before_update_) before_update_();
  optimizer_.step(model_.backend(), model_.params(), model_.grads(), r.lr, step + 1, grad_scale,
                  snapshot_ ? &*snapshot_ : nullptr);
  snapshot_.reset();
  if (comm_.world_size() > 1) {
    std::vector<int64_t> counts;
    for (const owned_range& o : ranges_) counts.push_back(o.size());
    comm_.all_gather_v(model_.params(), counts);
  }
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
