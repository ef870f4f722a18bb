#include "engine/param_layout.hpp"

#include "config/error.hpp"

namespace lz::engine {

gpt2_config gpt2_config::from_spec(const config::run_spec& spec) {
  gpt2_config cfg;
  cfg.max_seq_len = spec.model.max_seq_len;
  cfg.vocab_size = spec.model.vocab_size;
  cfg.padded_vocab_size = spec.resolved_padded_vocab();
  cfg.layers = spec.model.layers;
  cfg.heads = spec.model.heads;
  cfg.channels = spec.model.channels;
  return cfg;
}

param_layout::param_layout(const gpt2_config& cfg) {
  const int64_t Vp = cfg.padded_vocab_size, maxT = cfg.max_seq_len;
  const int64_t L = cfg.layers, C = cfg.channels;
  auto add = [this](std::string name, std::vector<int64_t> shape, bool decay) {
    int64_t numel = 1;
    for (int64_t d : shape) numel *= d;
    tensors_.push_back({std::move(name), total_, numel, std::move(shape), decay});
    total_ += numel;
  };
  add("wte", {Vp, C}, true);
  add("wpe", {maxT, C}, true);
  add("ln1w", {L, C}, false);
  add("ln1b", {L, C}, false);
  add("qkvw", {L, 3 * C, C}, true);
  add("qkvb", {L, 3 * C}, false);
  add("attprojw", {L, C, C}, true);
  add("attprojb", {L, C}, false);
  add("ln2w", {L, C}, false);
  add("ln2b", {L, C}, false);
  add("fcw", {L, 4 * C, C}, true);
  add("fcb", {L, 4 * C}, false);
  add("fcprojw", {L, C, 4 * C}, true);
  add("fcprojb", {L, C}, false);
  add("lnfw", {C}, false);
  add("lnfb", {C}, false);
}

const param_tensor& param_layout::get(std::string_view name) const {
  for (const auto& t : tensors_) {
    if (t.name == name) return t;
  }
  LZ_CHECK(false, "no parameter tensor named '{}'", name);
  return tensors_.front();  // unreachable
}

param_views param_layout::views(float* base) const {
  float* p[16];
  for (size_t i = 0; i < tensors_.size(); i++) p[i] = base + tensors_[i].offset;
  return {p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7],
          p[8], p[9], p[10], p[11], p[12], p[13], p[14], p[15]};
}

}  // namespace lz::engine
