// matmul.hpp: GEMMs through oneDNN's matmul primitive.
//
// Every GEMM of the model is one of three strided shapes; a primitive is created once per
// (shape, layout) and cached, so the training step pays the JIT only on its first call.
#pragma once

#include <cstdint>
#include <map>
#include <unordered_map>
#include <memory>
#include <mutex>
#include <tuple>

namespace lz::kernels::cpu {

class onednn_matmul {
public:
  onednn_matmul();
  ~onednn_matmul();
  onednn_matmul(const onednn_matmul&) = delete;
  onednn_matmul& operator=(const onednn_matmul&) = delete;

  // c (M, N) = a (M, K) . b (K, N) [+ bias (N)] [+ c if accumulate].
  // Each matrix is given by its pointer and its (row, column) element strides, so that
  // transposed views need no copy.
  struct operand {
    const float* data;
    int64_t row_stride;
    int64_t col_stride;
  };
  void run(float* c, operand a, operand b, const float* bias, int64_t M, int64_t K, int64_t N,
           bool accumulate);

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace lz::kernels::cpu
