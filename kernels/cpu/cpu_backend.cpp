// cpu_backend.cpp: kernels::backend on the CPU; wires the ops of this folder together.
#include <omp.h>

#include <cstring>

#include "config/error.hpp"
#include "kernels/backend.hpp"
#include "kernels/cpu/matmul.hpp"
#include "kernels/cpu/ops.hpp"

namespace lz::kernels {

namespace {

class cpu_backend final : public backend {
public:
  explicit cpu_backend(int threads) : threads_(threads) {
    LZ_CHECK(threads >= 1, "threads = {}", threads);
    omp_set_dynamic(0);
    omp_set_num_threads(threads);
  }

  const char* name() const override { return "cpu"; }
  int threads() const override { return threads_; }
  void use_in_this_thread() override {
    omp_set_dynamic(0);
    omp_set_num_threads(threads_);
  }

  void matmul_forward(float* out, const float* inp, const float* weight, const float* bias,
                      int64_t N, int64_t C, int64_t OC) override {
    // out (N, OC) = inp (N, C) . weight^T, weight (OC, C) read as a (C, OC) view
    gemm_.run(out, {inp, C, 1}, {weight, 1, C}, bias, N, C, OC, false);
  }

  void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                       const float* inp, const float* weight, int64_t N, int64_t C,
                       int64_t OC) override {
    if (dinp != nullptr) {
      // dinp (N, C) = dout (N, OC) . weight (OC, C)
      gemm_.run(dinp, {dout, OC, 1}, {weight, C, 1}, nullptr, N, OC, C, false);
    }
    // dweight (OC, C) += dout^T (OC, N) . inp (N, C)
    gemm_.run(dweight, {dout, 1, OC}, {inp, C, 1}, nullptr, OC, N, C, true);
    if (dbias != nullptr) cpu::bias_backward(dbias, dout, N, OC);
  }

  void encoder_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe,
                       int64_t B, int64_t T, int64_t C) override {
    cpu::encoder_forward(out, tokens, wte, wpe, B, T, C);
  }
  void encoder_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens,
                        int64_t B, int64_t T, int64_t C) override {
    cpu::encoder_backward(dwte, dwpe, dout, tokens, B, T, C);
  }
  void layernorm_forward(float* out, float* mean, float* rstd, const float* inp,
                         const float* weight, const float* bias, int64_t N,
                         int64_t C) override {
    cpu::layernorm_forward(out, mean, rstd, inp, weight, bias, N, C);
  }
  void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                          const float* inp, const float* weight, const float* mean,
                          const float* rstd, int64_t N, int64_t C) override {
    cpu::layernorm_backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C);
  }
  void attention_forward(float* out, float* att, const float* qkv, int64_t B, int64_t T,
                         int64_t C, int64_t NH) override {
    cpu::attention_forward(out, att, qkv, B, T, C, NH);
  }
  void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* att,
                          int64_t B, int64_t T, int64_t C, int64_t NH) override {
    cpu::attention_backward(dqkv, dout, qkv, att, B, T, C, NH);
  }
  void gelu_forward(float* out, const float* inp, int64_t n) override {
    cpu::gelu_forward(out, inp, n);
  }
  void gelu_backward(float* dinp, const float* inp, const float* dout, int64_t n) override {
    cpu::gelu_backward(dinp, inp, dout, n);
  }
  void residual_forward(float* out, const float* a, const float* b, int64_t n) override {
    cpu::residual_forward(out, a, b, n);
  }
  void softmax_crossentropy_forward(float* losses, float* logits_to_probs,
                                    const int32_t* targets, int64_t N, int64_t V,
                                    int64_t Vp) override {
    cpu::softmax_crossentropy_forward(losses, logits_to_probs, targets, N, V, Vp);
  }
  void softmax_crossentropy_backward(float* probs_to_dlogits, const int32_t* targets,
                                     float dloss, int64_t N, int64_t V, int64_t Vp) override {
    cpu::softmax_crossentropy_backward(probs_to_dlogits, targets, dloss, N, V, Vp);
  }
  double sum_squares(const float* x, int64_t n) override { return cpu::sum_squares(x, n); }
  void scale(float* x, float s, int64_t n) override { cpu::scale(x, s, n); }
  void zero(float* x, int64_t n) override { std::memset(x, 0, static_cast<size_t>(n) * 4); }
  void adamw_update(float* params, const float* grads, float* m, float* v, int64_t n,
                    const adamw_step& step, const adamw_snapshot* snapshot) override {
    cpu::adamw_update(params, grads, m, v, n, step, snapshot);
  }

private:
  int threads_;
  cpu::onednn_matmul gemm_;
};

}  // namespace

std::unique_ptr<backend> make_cpu_backend(int threads) {
  return std::make_unique<cpu_backend>(threads);
}

}  // namespace lz::kernels
