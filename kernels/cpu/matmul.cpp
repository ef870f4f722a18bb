// matmul.cpp: oneDNN 2.x matmul (desc -> primitive_desc -> primitive), cached by shape.
#include "kernels/cpu/matmul.hpp"

#include <oneapi/dnnl/dnnl.hpp>

#include "config/error.hpp"

namespace lz::kernels::cpu {

namespace {
using dt = dnnl::memory::data_type;
using key_type = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                            bool, bool>;  // M K N, a strides, b strides, bias, accumulate
}  // namespace

struct onednn_matmul::impl {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  std::mutex mutex;  // the cache; the training step itself calls from one thread
  std::map<key_type, dnnl::matmul> cache;
};

onednn_matmul::onednn_matmul() : impl_(std::make_unique<impl>()) {}
onednn_matmul::~onednn_matmul() = default;

void onednn_matmul::run(float* c, operand a, operand b, const float* bias, int64_t M,
                        int64_t K, int64_t N, bool accumulate) {
  using dnnl::memory;
  const memory::desc a_md({M, K}, dt::f32, {a.row_stride, a.col_stride});
  const memory::desc b_md({K, N}, dt::f32, {b.row_stride, b.col_stride});
  const memory::desc c_md({M, N}, dt::f32, {N, 1});
  const memory::desc bias_md({1, N}, dt::f32, {N, 1});

  const key_type key{M, K, N, a.row_stride, a.col_stride, b.row_stride, b.col_stride,
                     bias != nullptr, accumulate};
  dnnl::matmul* prim = nullptr;
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    auto it = impl_->cache.find(key);
    if (it == impl_->cache.end()) {
      dnnl::primitive_attr attr;
      if (accumulate) {
        dnnl::post_ops ops;
        ops.append_sum(1.0f);
        attr.set_post_ops(ops);
      }
      const auto desc = bias != nullptr ? dnnl::matmul::desc(a_md, b_md, bias_md, c_md)
                                        : dnnl::matmul::desc(a_md, b_md, c_md);
      const dnnl::matmul::primitive_desc pd(desc, attr, impl_->engine);
      LZ_CHECK(pd.scratchpad_desc().get_size() < (size_t{1} << 30),
               "oneDNN scratchpad of {} bytes for {}x{}x{}", pd.scratchpad_desc().get_size(),
               M, K, N);
      it = impl_->cache.emplace(key, dnnl::matmul(pd)).first;
    }
    prim = &it->second;
  }
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, memory(a_md, impl_->engine, const_cast<float*>(a.data))},
      {DNNL_ARG_WEIGHTS, memory(b_md, impl_->engine, const_cast<float*>(b.data))},
      {DNNL_ARG_DST, memory(c_md, impl_->engine, c)}};
  if (bias != nullptr) {
    args.emplace(DNNL_ARG_BIAS, memory(bias_md, impl_->engine, const_cast<float*>(bias)));
  }
  prim->execute(impl_->stream, args);
  impl_->stream.wait();
}

}  // namespace lz::kernels::cpu
