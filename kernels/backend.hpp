// backend.hpp: the kernel interface the engine's training step is written against.
//
// One virtual call per op. Pointers are to memory the backend can address (host memory for
// the CPU backend, device memory for the CUDA twin). Shapes use the names of the whole
// project: B batch, T time, C channels, OC output channels, NH heads, V vocab, Vp padded
// vocab, N = B*T rows. Conventions, so that the backward pass composes without copies:
//   - a forward op overwrites its outputs;
//   - a backward op overwrites the gradient of its activation input (dinp) unless its
//     comment says "+=", and always accumulates (+=) into parameter gradients.
#pragma once

#include <cstdint>
#include <memory>

namespace lz::kernels {

struct adamw_step {
  float lr;            // learning rate of this step
  float beta1, beta2;  // moment decay
  float eps;
  float weight_decay;  // decoupled; 0 for tensors that are not decayed
  float bias_correction1;  // 1 - beta1^t
  float bias_correction2;  // 1 - beta2^t
  float grad_scale;        // gradients are multiplied by this first (clipping)
};

// Where adamw_update copies the values it reads before updating them (a checkpoint
// snapshot taken for the price of the writes, inside a pass that is memory-bound anyway).
struct adamw_snapshot {
  float* params;
  float* m;
  float* v;
};

class backend {
public:
  virtual ~backend() = default;
  virtual const char* name() const = 0;
  virtual int threads() const = 0;
  // Makes the calling thread run this backend's kernels with threads() threads (a thread
  // pool's size is per calling thread: a rank's thread calls this before its first step).
  virtual void use_in_this_thread() = 0;

  // out (N, OC) = inp (N, C) . weight (OC, C)^T + bias (OC); bias may be null.
  virtual void matmul_forward(float* out, const float* inp, const float* weight,
                              const float* bias, int64_t N, int64_t C, int64_t OC) = 0;
  // dinp (N, C) = dout (N, OC) . weight (OC, C)            (skipped when dinp is null)
  // dweight (OC, C) += dout^T . inp;  dbias (OC) += sum_n dout   (dbias may be null)
  virtual void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                               const float* inp, const float* weight, int64_t N, int64_t C,
                               int64_t OC) = 0;

  // out (B, T, C) = wte[tokens] + wpe[t]
  virtual void encoder_forward(float* out, const int32_t* tokens, const float* wte,
                               const float* wpe, int64_t B, int64_t T, int64_t C) = 0;
  // dwte (Vp, C) += scatter of dout by token; dwpe (maxT, C) += sum over b of dout
  virtual void encoder_backward(float* dwte, float* dwpe, const float* dout,
                                const int32_t* tokens, int64_t B, int64_t T, int64_t C) = 0;

  // out (N, C) = (inp - mean) * rstd * weight + bias; mean, rstd (N) kept for backward
  virtual void layernorm_forward(float* out, float* mean, float* rstd, const float* inp,
                                 const float* weight, const float* bias, int64_t N,
                                 int64_t C) = 0;
  // dinp (N, C) += ...; dweight, dbias (C) += ...
  virtual void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                                  const float* inp, const float* weight, const float* mean,
                                  const float* rstd, int64_t N, int64_t C) = 0;

  // qkv (B, T, 3C) -> out (B, T, C), att (B, NH, T, T) causal softmax probabilities
  virtual void attention_forward(float* out, float* att, const float* qkv, int64_t B,
                                 int64_t T, int64_t C, int64_t NH) = 0;
  // dqkv (B, T, 3C) = ... from dout (B, T, C)
  virtual void attention_backward(float* dqkv, const float* dout, const float* qkv,
                                  const float* att, int64_t B, int64_t T, int64_t C,
                                  int64_t NH) = 0;

  // GELU, tanh approximation. out (n); dinp (n) = gelu'(inp) * dout (may alias dout)
  virtual void gelu_forward(float* out, const float* inp, int64_t n) = 0;
  virtual void gelu_backward(float* dinp, const float* inp, const float* dout, int64_t n) = 0;

  // out (n) = a + b
  virtual void residual_forward(float* out, const float* a, const float* b, int64_t n) = 0;

  // logits (N, Vp) -> probs in place (columns >= V get probability 0); losses (N) =
  // -log probs[target]. targets may be null (probabilities only, losses untouched).
  virtual void softmax_crossentropy_forward(float* losses, float* logits_to_probs,
                                            const int32_t* targets, int64_t N, int64_t V,
                                            int64_t Vp) = 0;
  // probs (N, Vp) -> dlogits in place: (probs - onehot(target)) * dloss
  virtual void softmax_crossentropy_backward(float* probs_to_dlogits, const int32_t* targets,
                                             float dloss, int64_t N, int64_t V,
                                             int64_t Vp) = 0;

  // sum of x^2 in float64, in an order that does not depend on the thread count
  virtual double sum_squares(const float* x, int64_t n) = 0;
  // x (n) *= s
  virtual void scale(float* x, float s, int64_t n) = 0;
  // x (n) = 0
  virtual void zero(float* x, int64_t n) = 0;
  // AdamW on n elements (one tensor or a range of one). snapshot (nullable; n elements
  // each) receives params, m and v as they were before this update.
  virtual void adamw_update(float* params, const float* grads, float* m, float* v, int64_t n,
                            const adamw_step& step, const adamw_snapshot* snapshot) = 0;
};

// The CPU backend: oneDNN GEMMs, OpenMP-threaded vectorised kernels for the rest.
// threads sets the OpenMP pool of this process (one rank per process).
std::unique_ptr<backend> make_cpu_backend(int threads);

}  // namespace lz::kernels
