// The memory a run needs, from its spec alone: against what a model really allocates, and
// refusals with the figures; sizes computed with overflow checks.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "config/run_spec.hpp"
#include "engine/gpt2.hpp"
#include "engine/memory_estimate.hpp"
#include "engine/optimizer.hpp"
#include "engine/param_layout.hpp"

namespace {

using lz::config::run_spec;
using lz::engine::gpt2;
using lz::engine::gpt2_config;

constexpr uint64_t gib = uint64_t{1} << 30;

gpt2_config tiny_config() {
  return {.max_seq_len = 8, .vocab_size = 17, .padded_vocab_size = 32, .layers = 2,
          .heads = 2, .channels = 8};
}

float forward_on_zeros(gpt2& model, int64_t B, int64_t T) {
  const std::vector<int32_t> tokens(static_cast<size_t>(B * T), 0);
  return model.forward(tokens.data(), tokens.data(), B, T);
}

std::string refusal_of(const run_spec& spec, uint64_t available_bytes) {
  try {
    lz::engine::require_memory_fits(spec, available_bytes);
  } catch (const lz::spec_error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a refusal with " << available_bytes << " bytes available";
  return "";
}

TEST(activation_bytes_for, equals_what_a_forward_allocates) {
  auto k = lz::kernels::make_cpu_backend(1);
  gpt2 model(tiny_config(), *k);
  EXPECT_EQ(model.activation_bytes(), 0);
  forward_on_zeros(model, 2, 6);
  EXPECT_EQ(model.activation_bytes(), gpt2::activation_bytes_for(tiny_config(), 2, 6));
  // The buffers keep their largest shape: (3, 6) then (1, 8) leaves room for (3, 8).
  forward_on_zeros(model, 3, 6);
  forward_on_zeros(model, 1, 8);
  EXPECT_EQ(model.activation_bytes(), gpt2::activation_bytes_for(tiny_config(), 3, 8));
}

TEST(activation_bytes_for, counts_every_buffer_once) {
  // L=2 C=8 NH=2 Vp=32 at B=2 T=8 (N = 16 tokens): every buffer is a multiple of 16
  // floats, so no padding; the sizes of gpt2.hpp's shape comments, one by one.
  const int64_t L = 2, C = 8, NH = 2, Vp = 32, B = 2, T = 8, N = B * T;
  const int64_t floats = N * C                       // encoded
                         + 2 * L * N * C + 2 * L * N  // ln1, atty; ln1_mean, ln1_rstd
                         + L * N * 3 * C              // qkv
                         + L * B * NH * T * T         // att
                         + 3 * L * N * C + 2 * L * N  // residual2, ln2, residual3; ln2 stats
                         + 2 * L * N * 4 * C          // fch, fch_gelu
                         + N * C + 2 * N              // lnf; lnf_mean, lnf_rstd
                         + N * Vp + N                 // logits, losses
                         + 3 * N * C + N * 4 * C;     // proj, dres, dc, d4c
  EXPECT_EQ(gpt2::activation_bytes_for(tiny_config(), B, T), floats * 4);
}

TEST(activation_bytes_for, rounds_each_buffer_up_to_64_bytes) {
  // B=1 T=1: 18 buffers of at most 16 floats, qkv 48, fch and fch_gelu 64, logits 32, d4c 32.
  EXPECT_EQ(gpt2::activation_bytes_for(tiny_config(), 1, 1), (18 * 16 + 48 + 2 * 64 + 2 * 32) * 4);
}

TEST(activation_bytes_for, an_overflowing_shape_is_a_spec_error) {
  gpt2_config huge = tiny_config();
  huge.layers = 1024;
  huge.heads = 65536;
  EXPECT_THROW(gpt2::activation_bytes_for(huge, int64_t{1} << 20, int64_t{1} << 20),
               lz::spec_error);
  EXPECT_THROW(gpt2::activation_bytes_for(tiny_config(), 0, 4), lz::spec_error);
}

TEST(param_layout, an_overflowing_parameter_count_is_a_spec_error_naming_the_keys) {
  gpt2_config cfg = tiny_config();
  cfg.channels = 1'000'000'000;  // (L, 3C, C) is 6e18 per layer
  try {
    const lz::engine::param_layout layout(cfg);
    FAIL() << "expected a spec_error, got " << layout.total() << " parameters";
  } catch (const lz::spec_error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("model.channels (C) 1000000000"), std::string::npos) << message;
    EXPECT_NE(message.find("lower model.layers, model.channels"), std::string::npos)
        << message;
  }
}

TEST(estimate_run_memory, of_the_default_spec_matches_what_the_run_allocates) {
  const run_spec spec = lz::config::embedded_default_spec();
  const lz::engine::run_memory_estimate e = lz::engine::estimate_run_memory(spec);
  auto k = lz::kernels::make_cpu_backend(2);
  gpt2 model(gpt2_config::from_spec(spec), *k);
  const lz::engine::adamw_optimizer adam(model.layout(), 0, model.num_params(), {});

  const uint64_t weights_bytes = static_cast<uint64_t>(model.num_params()) * 4;
  EXPECT_EQ(e.parameter_count, model.num_params());
  EXPECT_EQ(e.parameters_bytes, weights_bytes);
  EXPECT_EQ(e.gradients_bytes, weights_bytes);
  EXPECT_EQ(e.adam_m_bytes, static_cast<uint64_t>(adam.end() - adam.begin()) * 4);
  EXPECT_EQ(e.adam_v_bytes, e.adam_m_bytes);
  EXPECT_EQ(e.checkpoint_snapshot_bytes, 3 * weights_bytes);  // checkpoint.every_steps = 50
  // one rank: its own copy (weights, m, v), kept and filling; no buddy
  EXPECT_EQ(e.memory_copies_bytes, spec.parallel.ranks > 1 ? 12 * weights_bytes : 6 * weights_bytes);
  EXPECT_EQ(e.token_data_bytes, 0u);

  // Training at (B 8, T 128), then the end-of-run sample of 200 tokens after "And ": its
  // last window is 203 tokens, padded to 224, on the same buffers.
  forward_on_zeros(model, spec.data.micro_batch, spec.data.seq_len);
  const std::vector<int32_t> window(224, 65);
  model.forward(window.data(), nullptr, 1, 224);
  const auto actual = static_cast<uint64_t>(model.activation_bytes());
  EXPECT_GE(e.activations_bytes, actual);
  EXPECT_LE(e.activations_bytes, actual * 3 / 2);
  EXPECT_EQ(e.activation_micro_batch, 8);
  EXPECT_EQ(e.activation_seq_len, 256);

  // the exact reduction over 2 slots on one rank holds two more gradient buffers (the
  // world_step tests check that a step never holds more than peak_subtree_values())
  EXPECT_EQ(e.reduction_bytes, 2 * weights_bytes);
  const uint64_t actual_total = 4 * weights_bytes + actual + 3 * weights_bytes + 2 * weights_bytes +
                                e.memory_copies_bytes;
  EXPECT_GE(e.total_bytes, actual_total);
  EXPECT_LE(e.total_bytes, actual_total * 3 / 2);
  EXPECT_EQ(e.total_bytes, e.parameters_bytes + e.gradients_bytes + e.reduction_bytes +
                               e.adam_m_bytes + e.adam_v_bytes + e.activations_bytes +
                               e.checkpoint_snapshot_bytes + e.memory_copies_bytes);
}

TEST(estimate_run_memory, without_a_sample_activations_are_those_of_training) {
  run_spec spec;
  spec.run.sample_tokens = 0;
  spec.checkpoint.every_steps = 0;
  spec.fault_tolerance.replica_every_steps = 0;
  const lz::engine::run_memory_estimate e = lz::engine::estimate_run_memory(spec, 12345);
  EXPECT_EQ(e.activation_seq_len, spec.data.seq_len);
  EXPECT_EQ(e.activations_bytes, static_cast<uint64_t>(gpt2::activation_bytes_for(
                                     gpt2_config::from_spec(spec), 8, 128)));
  EXPECT_EQ(e.checkpoint_snapshot_bytes, 0u);
  EXPECT_EQ(e.memory_copies_bytes, 0u);
  EXPECT_EQ(e.token_data_bytes, 12345u);
  EXPECT_EQ(e.total_bytes, 4 * e.parameters_bytes + e.reduction_bytes + e.activations_bytes + 12345);
}

TEST(estimate_run_memory, counts_a_model_per_rank_and_the_moments_once) {
  run_spec one;
  one.data.slots = 4;
  run_spec four = one;
  four.parallel.ranks = 4;
  const auto a = lz::engine::estimate_run_memory(one);
  const auto b = lz::engine::estimate_run_memory(four);
  EXPECT_EQ(a.reduction_bytes, 3 * a.parameters_bytes);  // [01], 2, 3 before they merge
  EXPECT_EQ(b.reduction_bytes, 1 * b.parameters_bytes);  // one slot per rank
  const uint64_t per_rank = b.parameters_bytes + b.gradients_bytes + b.reduction_bytes +
                            b.activations_bytes;
  EXPECT_EQ(b.total_bytes, 4 * per_rank + b.adam_m_bytes + b.adam_v_bytes +
                               b.checkpoint_snapshot_bytes + b.memory_copies_bytes);
  EXPECT_EQ(b.memory_copies_bytes, 12 * b.parameters_bytes);  // own and buddy's, split
  run_spec fast = four;
  fast.parallel.reduction = "fast";
  EXPECT_EQ(lz::engine::estimate_run_memory(fast).reduction_bytes, 0u);
}

TEST(estimate_run_memory, a_spec_past_int64_is_a_spec_error_not_a_crash) {
  run_spec spec;  // not validated: model.channels = 1e9 used to crash the run
  spec.model.channels = 1'000'000'000;
  EXPECT_THROW(lz::engine::estimate_run_memory(spec), lz::spec_error);
}

TEST(require_memory_fits, the_default_spec_fits_this_machine) {
  const uint64_t available = lz::engine::physical_memory_bytes();
  EXPECT_GT(available, 64u << 20);
  EXPECT_NO_THROW(lz::engine::require_memory_fits(lz::config::embedded_default_spec(),
                                                  available));
}

TEST(require_memory_fits, a_million_layers_is_refused_with_the_figures) {
  run_spec spec;  // not validated: model.layers = 1e6 used to end in bad_alloc
  spec.model.layers = 1'000'000;
  const lz::engine::run_memory_estimate e = lz::engine::estimate_run_memory(spec);
  EXPECT_GT(e.total_bytes, 1000 * gib);
  const std::string message = refusal_of(spec, 16 * gib);
  for (const std::string& fragment :
       {fmt::format("({} bytes)", e.total_bytes), std::string("16.00 GiB (17179869184 bytes) available"),
        std::string("parameters"), std::string("AdamW moments m"),
        std::string("checkpoint snapshots"), std::string("model.layers (1000000)"),
        std::string("data.micro_batch (8)"), std::string("checkpoint.every_steps = 0")})
    EXPECT_NE(message.find(fragment), std::string::npos) << "lacks \"" << fragment << "\":\n"
                                                         << message;
  // The activations of a million layers are the largest part: their keys come first.
  EXPECT_LT(message.find("data.micro_batch (8)"), message.find("model.layers (1000000)"))
      << message;
}

TEST(require_memory_fits, large_weights_name_the_model_keys_first) {
  run_spec spec;
  spec.model.layers = 48;
  spec.model.channels = 8192;
  spec.model.heads = 64;
  spec.run.sample_tokens = 0;
  const std::string message = refusal_of(spec, 64 * gib);
  EXPECT_LT(message.find("model.layers (48) or model.channels (8192)"),
            message.find("checkpoint.every_steps = 0"))
      << message;
  EXPECT_LT(message.find("checkpoint.every_steps = 0"), message.find("data.micro_batch (8)"))
      << message;
}

TEST(require_memory_fits, large_activations_name_the_batch_keys_first) {
  run_spec spec;
  spec.model.max_seq_len = 8192;
  spec.data.seq_len = 8192;
  spec.data.micro_batch = 64;
  spec.run.sample_tokens = 0;
  const std::string message = refusal_of(spec, 1 * gib);
  EXPECT_NE(message.find("activations"), std::string::npos) << message;
  EXPECT_LT(message.find("data.micro_batch (64) or data.seq_len (8192)"),
            message.find("model.layers (4)"))
      << message;
}

TEST(require_memory_fits, an_estimate_within_the_figure_passes) {
  run_spec spec;
  const lz::engine::run_memory_estimate e = lz::engine::estimate_run_memory(spec);
  EXPECT_NO_THROW(lz::engine::require_memory_fits(spec, e.total_bytes));
  EXPECT_THROW(lz::engine::require_memory_fits(spec, e.total_bytes - 1), lz::spec_error);
}

}  // namespace
