// gpt2.hpp: a GPT-2 family decoder: parameters, gradients, activations, forward, backward.
//
// The optimizer and the data are outside (engine/optimizer.hpp, engine/train_step.hpp);
// this class only turns tokens into losses and losses into gradients, through a
// kernels::backend, so the same code runs on the CPU and on the CUDA twin.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "engine/aligned_buffer.hpp"
#include "engine/gpt2_config.hpp"
#include "engine/param_layout.hpp"
#include "kernels/backend.hpp"

namespace lz::engine {

class gpt2 {
public:
  gpt2(const gpt2_config& cfg, kernels::backend& backend);

  const gpt2_config& config() const { return cfg_; }
  const param_layout& layout() const { return layout_; }
  int64_t num_params() const { return layout_.total(); }
  float* params() { return params_.data(); }
  const float* params() const { return params_.data(); }
  float* grads() { return grads_.data(); }
  const float* grads() const { return grads_.data(); }
  kernels::backend& backend() { return backend_; }

  // GPT-2's initialisation: N(0, 0.02) for matrices and embeddings, residual projections
  // scaled by 1/sqrt(2L), zero biases, unit norm weights; padded vocabulary rows zero.
  void init_random(uint64_t seed);

  // Forward on inputs (B, T). With targets (B, T): per-token losses, returns their mean.
  // Without: returns 0 and leaves next-token probabilities in probs().
  float forward(const int32_t* inputs, const int32_t* targets, int64_t B, int64_t T);
  // Backward of the last forward (which had targets). dloss is d(objective)/d(token loss),
  // 1 / (tokens in the global batch) for a mean. Parameter gradients accumulate (+=).
  void backward(float dloss);
  void zero_grad() { grads_.zero(); }
  // Exchanges the gradient buffer with `other` (num_params() floats): the exact reduction
  // keeps each slot's gradient without copying it.
  void swap_grads(aligned_buffer& other);

  // (B, T, Vp) probabilities of the last forward; padded columns are 0.
  const float* probs() const { return acts_.logits; }
  // Bytes of activation memory currently held.
  int64_t activation_bytes() const { return act_buffer_.size() * 4; }
  // Bytes of activation memory a forward of (B, T) needs, computed without allocating:
  // what activation_bytes() reports after such a forward on a fresh model. Throws
  // lz::spec_error, naming the keys, when a size overflows int64.
  static int64_t activation_bytes_for(const gpt2_config& cfg, int64_t B, int64_t T);

private:
  // The activation buffers, all carved from act_buffer_. Each field is listed once in
  // activation_table() (gpt2.cpp) with its name and size: the allocation, the byte count
  // and these pointers all come from that table, so the field order here does not matter.
  struct activations {
    float* encoded;    // (B, T, C)
    float* ln1;        // (L, B, T, C)
    float* ln1_mean;   // (L, B, T)
    float* ln1_rstd;   // (L, B, T)
    float* qkv;        // (L, B, T, 3C)
    float* atty;       // (L, B, T, C)
    float* att;        // (L, B, NH, T, T)
    float* residual2;  // (L, B, T, C)
    float* ln2;        // (L, B, T, C)
    float* ln2_mean;   // (L, B, T)
    float* ln2_rstd;   // (L, B, T)
    float* fch;        // (L, B, T, 4C)
    float* fch_gelu;   // (L, B, T, 4C)
    float* residual3;  // (L, B, T, C)
    float* lnf;        // (B, T, C)
    float* lnf_mean;   // (B, T)
    float* lnf_rstd;   // (B, T)
    float* logits;     // (B, T, Vp): logits, then probabilities, then their gradient
    float* losses;     // (B, T)
    float* proj;       // (B, T, C) scratch: attention and MLP projections before the add
    float* dres;       // (B, T, C) gradient flowing down the residual stream
    float* dc;         // (B, T, C) scratch gradient
    float* d4c;        // (B, T, 4C) scratch gradient (also dqkv)
  };
  struct activation_buffer;  // one row of the table: name, field, size for a shape
  static std::span<const activation_buffer> activation_table();
  // Elements of each buffer of the table (in table order) for (B, T), each rounded up to
  // 16 floats so every buffer starts on a 64-byte boundary, and their total.
  static int64_t plan_activations(const gpt2_config& cfg, int64_t B, int64_t T,
                                  std::vector<int64_t>* padded_sizes);
  void ensure_activations(int64_t B, int64_t T);

  gpt2_config cfg_;
  kernels::backend& backend_;
  param_layout layout_;
  aligned_buffer params_;
  aligned_buffer grads_;
  param_views p_;   // views into params_
  param_views g_;   // views into grads_

  aligned_buffer act_buffer_;
  activations acts_{};
  int64_t act_B_ = 0, act_T_ = 0;  // capacity of act_buffer_
  int64_t B_ = 0, T_ = 0;          // shape of the last forward
  std::vector<int32_t> inputs_, targets_;
  bool has_targets_ = false;
};

}  // namespace lz::engine
