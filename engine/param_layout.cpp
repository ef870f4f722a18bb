#include "engine/param_layout.hpp"

#include <optional>

#include "config/checked_math.hpp"
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
  // Every size is a product of spec keys: computed with overflow checks, so a spec that
  // escaped validation is an error naming the keys, not a wrapped size.
  const auto overflow = [&](std::string_view what) {
    LZ_THROW(lz::spec_error,
             "the parameter tensor {} of a model with model.padded_vocab_size (Vp) {}, "
             "model.max_seq_len (maxT) {}, model.layers (L) {} and model.channels (C) {} has "
             "more elements than int64 holds: lower model.layers, model.channels, "
             "model.max_seq_len or model.padded_vocab_size",
             what, Vp, maxT, L, C);
  };
  const auto times = [&](int64_t factor, int64_t size, std::string_view what) {
    const std::optional<int64_t> product = checked_mul(factor, size);
    if (!product) overflow(what);
    return *product;
  };
  const int64_t C3 = times(3, C, "qkvw (L, 3C, C)"), C4 = times(4, C, "fcw (L, 4C, C)");
  auto add = [&](std::string name, std::string_view shape_text, std::vector<int64_t> shape,
                 bool decay) {
    int64_t numel = 1;
    for (int64_t d : shape) numel = times(numel, d, name + " " + std::string(shape_text));
    const std::optional<int64_t> end = checked_add(total_, numel);
    if (!end) overflow("total");
    tensors_.push_back({std::move(name), total_, numel, std::move(shape), decay});
    total_ = *end;
  };
  add("wte", "(Vp, C)", {Vp, C}, true);
  add("wpe", "(maxT, C)", {maxT, C}, true);
  add("ln1w", "(L, C)", {L, C}, false);
  add("ln1b", "(L, C)", {L, C}, false);
  add("qkvw", "(L, 3C, C)", {L, C3, C}, true);
  add("qkvb", "(L, 3C)", {L, C3}, false);
  add("attprojw", "(L, C, C)", {L, C, C}, true);
  add("attprojb", "(L, C)", {L, C}, false);
  add("ln2w", "(L, C)", {L, C}, false);
  add("ln2b", "(L, C)", {L, C}, false);
  add("fcw", "(L, 4C, C)", {L, C4, C}, true);
  add("fcb", "(L, 4C)", {L, C4}, false);
  add("fcprojw", "(L, C, 4C)", {L, C, C4}, true);
  add("fcprojb", "(L, C)", {L, C}, false);
  add("lnfw", "(C)", {C}, false);
  add("lnfb", "(C)", {C}, false);
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
