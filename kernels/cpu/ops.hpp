// ops.hpp: the CPU kernels, one op per .cpp file in this folder. Semantics and shapes are
// those of kernels/backend.hpp; each loop is OpenMP-threaded with a static schedule and
// every reduction has an order fixed by the shapes (not by the thread count), so results
// are bitwise reproducible.
#pragma once

#include <cstdint>

#include "kernels/backend.hpp"

namespace lz::kernels::cpu {

void encoder_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe,
                     int64_t B, int64_t T, int64_t C);
void encoder_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens,
                      int64_t B, int64_t T, int64_t C);

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp,
                       const float* weight, const float* bias, int64_t N, int64_t C);
void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                        const float* inp, const float* weight, const float* mean,
                        const float* rstd, int64_t N, int64_t C);

void attention_forward(float* out, float* att, const float* qkv, int64_t B, int64_t T,
                       int64_t C, int64_t NH);
void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* att,
                        int64_t B, int64_t T, int64_t C, int64_t NH);

void gelu_forward(float* out, const float* inp, int64_t n);
void gelu_backward(float* dinp, const float* inp, const float* dout, int64_t n);

void residual_forward(float* out, const float* a, const float* b, int64_t n);

void softmax_crossentropy_forward(float* losses, float* logits_to_probs,
                                  const int32_t* targets, int64_t N, int64_t V, int64_t Vp);
void softmax_crossentropy_backward(float* probs_to_dlogits, const int32_t* targets,
                                   float dloss, int64_t N, int64_t V, int64_t Vp);

// dbias (OC) += sum over rows of dout (N, OC)
void bias_backward(float* dbias, const float* dout, int64_t N, int64_t OC);

double sum_squares(const float* x, int64_t n);
void scale(float* x, float s, int64_t n);
void adamw_update(float* params, const float* grads, float* m, float* v, int64_t n,
                  const adamw_step& step, const adamw_snapshot* snapshot);

}  // namespace lz::kernels::cpu
