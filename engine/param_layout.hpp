// param_layout.hpp: where each tensor lives in the flat parameter vector.
//
// llm.c's order, fp32, row-major, so weights can be exchanged with its gpt2_*.bin files:
// wte (Vp, C) | wpe (maxT, C) | ln1w (L, C) | ln1b (L, C) | qkvw (L, 3C, C) | qkvb (L, 3C)
// | attprojw (L, C, C) | attprojb (L, C) | ln2w (L, C) | ln2b (L, C) | fcw (L, 4C, C)
// | fcb (L, 4C) | fcprojw (L, C, 4C) | fcprojb (L, C) | lnfw (C) | lnfb (C)
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/gpt2_config.hpp"

namespace lz::engine {

struct param_tensor {
  std::string name;
  int64_t offset = 0;            // in elements from the start of the flat vector
  int64_t numel = 0;
  std::vector<int64_t> shape;
  bool decay = false;            // matrices get weight decay; biases and norms do not
};

// Pointers to each tensor inside one flat buffer (parameters or their gradients).
struct param_views {
  float* wte;       // (Vp, C)
  float* wpe;       // (maxT, C)
  float* ln1w;      // (L, C)
  float* ln1b;      // (L, C)
  float* qkvw;      // (L, 3C, C)
  float* qkvb;      // (L, 3C)
  float* attprojw;  // (L, C, C)
  float* attprojb;  // (L, C)
  float* ln2w;      // (L, C)
  float* ln2b;      // (L, C)
  float* fcw;       // (L, 4C, C)
  float* fcb;       // (L, 4C)
  float* fcprojw;   // (L, C, 4C)
  float* fcprojb;   // (L, C)
  float* lnfw;      // (C)
  float* lnfb;      // (C)
};

class param_layout {
public:
  // Throws lz::spec_error, naming the model keys, when a tensor's size or the total
  // overflows int64.
  explicit param_layout(const gpt2_config& cfg);

  const std::vector<param_tensor>& tensors() const { return tensors_; }
  int64_t total() const { return total_; }
  const param_tensor& get(std::string_view name) const;
  param_views views(float* base) const;

private:
  std::vector<param_tensor> tensors_;
  int64_t total_ = 0;
};

}  // namespace lz::engine
