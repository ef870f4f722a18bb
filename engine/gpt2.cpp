// gpt2.cpp: the forward and backward pass of the model, top to bottom.
#include "engine/gpt2.hpp"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <optional>
#include <string_view>

#include "config/checked_math.hpp"
#include "config/error.hpp"
#include "engine/rng.hpp"

namespace lz::engine {

gpt2::gpt2(const gpt2_config& cfg, kernels::backend& backend)
  : cfg_(cfg), backend_(backend), layout_(cfg) {
  LZ_CHECK(cfg.channels % cfg.heads == 0, "C {} NH {}", cfg.channels, cfg.heads);
  LZ_CHECK(cfg.padded_vocab_size >= cfg.vocab_size, "Vp {} V {}", cfg.padded_vocab_size,
           cfg.vocab_size);
  params_.resize(layout_.total());
  grads_.resize(layout_.total());
  p_ = layout_.views(params_.data());
  g_ = layout_.views(grads_.data());
}

void gpt2::swap_grads(aligned_buffer& other) {
  LZ_CHECK(other.size() == grads_.size(), "gradient buffer of {} floats, the model has {}",
           other.size(), grads_.size());
  std::swap(grads_, other);
  g_ = layout_.views(grads_.data());
}

void gpt2::init_random(uint64_t seed) {
  splitmix64 rng(seed);
  const float std_base = 0.02f;
  const float std_resid = 0.02f / std::sqrt(2.0f * static_cast<float>(cfg_.layers));
  for (const auto& t : layout_.tensors()) {
    float* p = params_.data() + t.offset;
    if (t.name.ends_with("w") && t.name.starts_with("ln")) {
      for (int64_t i = 0; i < t.numel; i++) p[i] = 1.0f;
    } else if (t.decay) {
      const float std = (t.name == "attprojw" || t.name == "fcprojw") ? std_resid : std_base;
      int64_t n = t.numel;
      if (t.name == "wte") n = cfg_.vocab_size * cfg_.channels;  // padded rows stay zero
      for (int64_t i = 0; i < n; i++) p[i] = static_cast<float>(rng.normal()) * std;
      for (int64_t i = n; i < t.numel; i++) p[i] = 0.0f;
    } else {
      for (int64_t i = 0; i < t.numel; i++) p[i] = 0.0f;
    }
  }
}

// The sizes a shape gives each activation buffer.
struct activation_dims {
  int64_t L, C, NH, Vp, B, T;
};

struct gpt2::activation_buffer {
  std::string_view name;
  float* activations::*field;
  std::optional<int64_t> (*numel)(const activation_dims& d);  // nullopt: overflows int64
};

std::span<const gpt2::activation_buffer> gpt2::activation_table() {
  using d = activation_dims;
  static constexpr activation_buffer table[] = {
    {"encoded", &activations::encoded,     // (B, T, C)
     [](const d& s) { return checked_product({s.B, s.T, s.C}); }},
    {"ln1", &activations::ln1,             // (L, B, T, C)
     [](const d& s) { return checked_product({s.L, s.B, s.T, s.C}); }},
    {"ln1_mean", &activations::ln1_mean,   // (L, B, T)
     [](const d& s) { return checked_product({s.L, s.B, s.T}); }},
    {"ln1_rstd", &activations::ln1_rstd,   // (L, B, T)
     [](const d& s) { return checked_product({s.L, s.B, s.T}); }},
    {"qkv", &activations::qkv,             // (L, B, T, 3C)
     [](const d& s) { return checked_product({s.L, s.B, s.T, 3, s.C}); }},
    {"atty", &activations::atty,           // (L, B, T, C)
     [](const d& s) { return checked_product({s.L, s.B, s.T, s.C}); }},
    {"att", &activations::att,             // (L, B, NH, T, T)
     [](const d& s) { return checked_product({s.L, s.B, s.NH, s.T, s.T}); }},
    {"residual2", &activations::residual2, // (L, B, T, C)
     [](const d& s) { return checked_product({s.L, s.B, s.T, s.C}); }},
    {"ln2", &activations::ln2,             // (L, B, T, C)
     [](const d& s) { return checked_product({s.L, s.B, s.T, s.C}); }},
    {"ln2_mean", &activations::ln2_mean,   // (L, B, T)
     [](const d& s) { return checked_product({s.L, s.B, s.T}); }},
    {"ln2_rstd", &activations::ln2_rstd,   // (L, B, T)
     [](const d& s) { return checked_product({s.L, s.B, s.T}); }},
    {"fch", &activations::fch,             // (L, B, T, 4C)
     [](const d& s) { return checked_product({s.L, s.B, s.T, 4, s.C}); }},
    {"fch_gelu", &activations::fch_gelu,   // (L, B, T, 4C)
     [](const d& s) { return checked_product({s.L, s.B, s.T, 4, s.C}); }},
    {"residual3", &activations::residual3, // (L, B, T, C)
     [](const d& s) { return checked_product({s.L, s.B, s.T, s.C}); }},
    {"lnf", &activations::lnf,             // (B, T, C)
     [](const d& s) { return checked_product({s.B, s.T, s.C}); }},
    {"lnf_mean", &activations::lnf_mean,   // (B, T)
     [](const d& s) { return checked_product({s.B, s.T}); }},
    {"lnf_rstd", &activations::lnf_rstd,   // (B, T)
     [](const d& s) { return checked_product({s.B, s.T}); }},
    {"logits", &activations::logits,       // (B, T, Vp)
     [](const d& s) { return checked_product({s.B, s.T, s.Vp}); }},
    {"losses", &activations::losses,       // (B, T)
     [](const d& s) { return checked_product({s.B, s.T}); }},
    {"proj", &activations::proj,           // (B, T, C)
     [](const d& s) { return checked_product({s.B, s.T, s.C}); }},
    {"dres", &activations::dres,           // (B, T, C)
     [](const d& s) { return checked_product({s.B, s.T, s.C}); }},
    {"dc", &activations::dc,               // (B, T, C)
     [](const d& s) { return checked_product({s.B, s.T, s.C}); }},
    {"d4c", &activations::d4c,             // (B, T, 4C)
     [](const d& s) { return checked_product({s.B, s.T, 4, s.C}); }},
  };
  // Every field of activations exactly once: as many rows as fields, no field twice.
  static_assert(std::size(table) == sizeof(activations) / sizeof(float*));
  constexpr bool fields_distinct = [] {
    for (size_t i = 0; i < std::size(table); i++)
      for (size_t j = i + 1; j < std::size(table); j++)
        if (table[i].field == table[j].field) return false;
    return true;
  }();
  static_assert(fields_distinct, "a field of gpt2::activations is listed twice");
  return table;
}

int64_t gpt2::plan_activations(const gpt2_config& cfg, int64_t B, int64_t T,
                               std::vector<int64_t>* padded_sizes) {
  const activation_dims dims{.L = cfg.layers, .C = cfg.channels, .NH = cfg.heads,
                             .Vp = cfg.padded_vocab_size, .B = B, .T = T};
  const auto overflow = [&](std::string_view buffer) {
    LZ_THROW(lz::spec_error,
             "the activation buffer {} for data.micro_batch (B) {} x data.seq_len (T) {} of a "
             "model with model.layers (L) {}, model.channels (C) {}, model.heads (NH) {} and "
             "padded vocabulary (Vp) {} has more elements than int64 holds: lower "
             "data.micro_batch, data.seq_len, model.layers, model.channels or model.heads",
             buffer, B, T, cfg.layers, cfg.channels, cfg.heads, cfg.padded_vocab_size);
  };
  int64_t total = 0;
  if (padded_sizes != nullptr) padded_sizes->clear();
  for (const activation_buffer& buffer : activation_table()) {
    const std::optional<int64_t> numel = buffer.numel(dims);
    const std::optional<int64_t> padded =
        numel ? checked_add(*numel, 15) : std::optional<int64_t>();
    if (!padded) overflow(buffer.name);
    const int64_t size = *padded / 16 * 16;  // keep each array 64-byte aligned
    const std::optional<int64_t> sum = checked_add(total, size);
    if (!sum || !checked_mul(*sum, sizeof(float))) overflow(buffer.name);
    total = *sum;
    if (padded_sizes != nullptr) padded_sizes->push_back(size);
  }
  return total;
}

int64_t gpt2::activation_bytes_for(const gpt2_config& cfg, int64_t B, int64_t T) {
  if (B < 1 || T < 1)
    LZ_THROW(lz::spec_error, "activations of B {} x T {}: data.micro_batch and data.seq_len "
             "must be at least 1", B, T);
  return plan_activations(cfg, B, T, nullptr) * static_cast<int64_t>(sizeof(float));
}

void gpt2::ensure_activations(int64_t B, int64_t T) {
  LZ_CHECK(T <= cfg_.max_seq_len, "T {} > maxT {}", T, cfg_.max_seq_len);
  if (B <= act_B_ && T <= act_T_) return;
  B = std::max(B, act_B_);
  T = std::max(T, act_T_);
  std::vector<int64_t> sizes;
  act_buffer_.resize(plan_activations(cfg_, B, T, &sizes));
  float* cursor = act_buffer_.data();
  const std::span<const activation_buffer> table = activation_table();
  for (size_t i = 0; i < table.size(); i++) {
    acts_.*(table[i].field) = cursor;
    cursor += sizes[i];
  }
  act_B_ = B;
  act_T_ = T;
}

float gpt2::forward(const int32_t* inputs, const int32_t* targets, int64_t B, int64_t T) {
  ensure_activations(B, T);
  const int64_t L = cfg_.layers, C = cfg_.channels, NH = cfg_.heads;
  const int64_t V = cfg_.vocab_size, Vp = cfg_.padded_vocab_size, N = B * T;
  for (int64_t i = 0; i < N; i++) {
    LZ_CHECK(inputs[i] >= 0 && inputs[i] < V, "input token {} outside [0, {})", inputs[i], V);
  }
  B_ = B;
  T_ = T;
  inputs_.assign(inputs, inputs + N);
  has_targets_ = targets != nullptr;
  if (has_targets_) targets_.assign(targets, targets + N);
  kernels::backend& k = backend_;
  activations& a = acts_;

  k.encoder_forward(a.encoded, inputs_.data(), p_.wte, p_.wpe, B, T, C);
  for (int64_t l = 0; l < L; l++) {
    const float* residual = l == 0 ? a.encoded : a.residual3 + (l - 1) * N * C;  // (N, C)
    float* ln1 = a.ln1 + l * N * C;
    float* qkv = a.qkv + l * N * 3 * C;
    float* atty = a.atty + l * N * C;
    float* att = a.att + l * B * NH * T * T;
    float* residual2 = a.residual2 + l * N * C;
    float* ln2 = a.ln2 + l * N * C;
    float* fch = a.fch + l * N * 4 * C;
    float* fch_gelu = a.fch_gelu + l * N * 4 * C;
    float* residual3 = a.residual3 + l * N * C;

    // attention sub-block
    k.layernorm_forward(ln1, a.ln1_mean + l * N, a.ln1_rstd + l * N, residual,
                        p_.ln1w + l * C, p_.ln1b + l * C, N, C);
    k.matmul_forward(qkv, ln1, p_.qkvw + l * 3 * C * C, p_.qkvb + l * 3 * C, N, C, 3 * C);
    k.attention_forward(atty, att, qkv, B, T, C, NH);
    k.matmul_forward(a.proj, atty, p_.attprojw + l * C * C, p_.attprojb + l * C, N, C, C);
    k.residual_forward(residual2, residual, a.proj, N * C);
    // MLP sub-block
    k.layernorm_forward(ln2, a.ln2_mean + l * N, a.ln2_rstd + l * N, residual2,
                        p_.ln2w + l * C, p_.ln2b + l * C, N, C);
    k.matmul_forward(fch, ln2, p_.fcw + l * 4 * C * C, p_.fcb + l * 4 * C, N, C, 4 * C);
    k.gelu_forward(fch_gelu, fch, N * 4 * C);
    k.matmul_forward(a.proj, fch_gelu, p_.fcprojw + l * 4 * C * C, p_.fcprojb + l * C, N,
                     4 * C, C);
    k.residual_forward(residual3, residual2, a.proj, N * C);
  }
  const float* last = a.residual3 + (L - 1) * N * C;
  k.layernorm_forward(a.lnf, a.lnf_mean, a.lnf_rstd, last, p_.lnfw, p_.lnfb, N, C);
  k.matmul_forward(a.logits, a.lnf, p_.wte, nullptr, N, C, Vp);  // tied LM head
  k.softmax_crossentropy_forward(a.losses, a.logits, has_targets_ ? targets_.data() : nullptr,
                                 N, V, Vp);
  if (!has_targets_) return 0.0f;
  double sum = 0.0;
  for (int64_t i = 0; i < N; i++) sum += a.losses[i];
  return static_cast<float>(sum / static_cast<double>(N));
}

void gpt2::backward(float dloss) {
  LZ_CHECK(has_targets_, "backward() needs a forward() with targets");
  const int64_t B = B_, T = T_, N = B * T;
  const int64_t L = cfg_.layers, C = cfg_.channels, NH = cfg_.heads;
  const int64_t V = cfg_.vocab_size, Vp = cfg_.padded_vocab_size;
  kernels::backend& k = backend_;
  activations& a = acts_;

  // LM head and final layernorm; dres starts as the gradient of the last residual.
  k.softmax_crossentropy_backward(a.logits, targets_.data(), dloss, N, V, Vp);
  k.matmul_backward(a.dc, g_.wte, nullptr, a.logits, a.lnf, p_.wte, N, C, Vp);
  const float* last = a.residual3 + (L - 1) * N * C;
  k.zero(a.dres, N * C);
  k.layernorm_backward(a.dres, g_.lnfw, g_.lnfb, a.dc, last, p_.lnfw, a.lnf_mean, a.lnf_rstd,
                       N, C);

  for (int64_t l = L - 1; l >= 0; l--) {
    const float* residual = l == 0 ? a.encoded : a.residual3 + (l - 1) * N * C;
    const float* ln1 = a.ln1 + l * N * C;
    const float* qkv = a.qkv + l * N * 3 * C;
    const float* atty = a.atty + l * N * C;
    const float* att = a.att + l * B * NH * T * T;
    const float* residual2 = a.residual2 + l * N * C;
    const float* ln2 = a.ln2 + l * N * C;
    const float* fch = a.fch + l * N * 4 * C;
    const float* fch_gelu = a.fch_gelu + l * N * 4 * C;

    // MLP: dres is d(residual3) = d(fcproj) and, through the skip, part of d(residual2)
    k.matmul_backward(a.d4c, g_.fcprojw + l * 4 * C * C, g_.fcprojb + l * C, a.dres,
                      fch_gelu, p_.fcprojw + l * 4 * C * C, N, 4 * C, C);
    k.gelu_backward(a.d4c, fch, a.d4c, N * 4 * C);
    k.matmul_backward(a.dc, g_.fcw + l * 4 * C * C, g_.fcb + l * 4 * C, a.d4c, ln2,
                      p_.fcw + l * 4 * C * C, N, C, 4 * C);
    k.layernorm_backward(a.dres, g_.ln2w + l * C, g_.ln2b + l * C, a.dc, residual2,
                         p_.ln2w + l * C, a.ln2_mean + l * N, a.ln2_rstd + l * N, N, C);
    // attention: dres is now d(residual2) = d(attproj) and, through the skip, d(residual)
    k.matmul_backward(a.dc, g_.attprojw + l * C * C, g_.attprojb + l * C, a.dres, atty,
                      p_.attprojw + l * C * C, N, C, C);
    k.attention_backward(a.d4c, a.dc, qkv, att, B, T, C, NH);  // d4c holds dqkv (N, 3C)
    k.matmul_backward(a.dc, g_.qkvw + l * 3 * C * C, g_.qkvb + l * 3 * C, a.d4c, ln1,
                      p_.qkvw + l * 3 * C * C, N, C, 3 * C);
    k.layernorm_backward(a.dres, g_.ln1w + l * C, g_.ln1b + l * C, a.dc, residual,
                         p_.ln1w + l * C, a.ln1_mean + l * N, a.ln1_rstd + l * N, N, C);
  }
  k.encoder_backward(g_.wte, g_.wpe, a.dres, inputs_.data(), B, T, C);
}

}  // namespace lz::engine
