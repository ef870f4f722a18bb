// memory_estimate.cpp: a run's memory by part, from its spec alone.
#include "engine/memory_estimate.hpp"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "config/checked_math.hpp"
#include "config/error.hpp"
#include "engine/gpt2.hpp"
#include "engine/slot_tree.hpp"
#include "engine/param_layout.hpp"

namespace lz::engine {
namespace {

// The end-of-run sample feeds its prompt and the tokens drawn so far, in windows rounded
// up to 32 positions (engine/sample.cpp); its prompt is a few tokens, allowed for here.
constexpr int64_t sample_window_multiple = 32;
constexpr int64_t sample_prompt_allowance = 32;
constexpr int64_t snapshot_copies = 3;  // weights, m and v of every parameter

constexpr double bytes_per_gib = 1024.0 * 1024.0 * 1024.0;

int64_t checked(std::optional<int64_t> value, std::string_view what) {
  if (!value)
    LZ_THROW(lz::spec_error, "the memory estimate of {} overflows int64: lower the model "
             "(model.layers, model.channels) or the batch (data.micro_batch, data.seq_len)",
             what);
  return *value;
}

// The positions the activation buffers hold: the training window, or the sample's.
int64_t activation_seq_len(const config::run_spec& spec) {
  int64_t T = spec.data.seq_len;
  if (spec.run.sample_tokens > 0) {
    const int64_t wanted = checked(checked_add(spec.run.sample_tokens,
                                               sample_prompt_allowance + sample_window_multiple - 1),
                                   "the sample window");
    const int64_t window = wanted / sample_window_multiple * sample_window_multiple;
    T = std::max(T, std::min(window, spec.model.max_seq_len));
  }
  return T;
}

std::string gib(uint64_t bytes) {
  return fmt::format("{:.2f} GiB", static_cast<double>(bytes) / bytes_per_gib);
}

// One group of parts and the keys that shrink it, for the refusal message.
struct shrink_hint {
  uint64_t bytes;
  std::string keys;
};

}  // namespace

run_memory_estimate estimate_run_memory(const config::run_spec& spec,
                                        uint64_t token_data_bytes) {
  const gpt2_config cfg = gpt2_config::from_spec(spec);
  run_memory_estimate e;
  e.parameter_count = param_layout(cfg).total();
  e.activation_micro_batch = spec.data.micro_batch;
  e.activation_seq_len = activation_seq_len(spec);
  const int64_t tensor_bytes =
      checked(checked_mul(e.parameter_count, sizeof(float)), "the parameters");
  const int64_t activations = gpt2::activation_bytes_for(cfg, e.activation_micro_batch,
                                                         e.activation_seq_len);
  const int64_t snapshots = spec.checkpoint.every_steps > 0
      ? checked(checked_mul(tensor_bytes, snapshot_copies), "the checkpoint snapshots")
      : 0;
  const int64_t copies = spec.fault_tolerance.replica_every_steps > 0
      ? checked(checked_mul(tensor_bytes, spec.parallel.ranks > 1 ? 12 : 6), "the in-memory copies")
      : 0;
  if (token_data_bytes > static_cast<uint64_t>(INT64_MAX))
    LZ_THROW(lz::spec_error, "token data of {} bytes: more than any machine holds",
             token_data_bytes);
  // The exact reduction keeps the partial sums of a rank's slot subtrees: at most
  // peak_subtree_values() full-length buffers on the rank that needs the most.
  const int64_t reduction_buffers =
      spec.parallel.reduction == "exact"
          ? peak_subtree_values(spec.data.slots, static_cast<int>(spec.parallel.ranks))
          : 0;
  const int64_t reduction =
      checked(checked_mul(tensor_bytes, reduction_buffers), "the reduction buffers");
  int64_t per_rank = 0;
  for (const int64_t part : {tensor_bytes, tensor_bytes, reduction, activations})
    per_rank = checked(checked_add(per_rank, part), "one rank");
  int64_t total = checked(checked_mul(per_rank, spec.parallel.ranks), "the ranks of the run");
  for (const int64_t part : {tensor_bytes, tensor_bytes, snapshots, copies,
                             static_cast<int64_t>(token_data_bytes)})
    total = checked(checked_add(total, part), "the whole run");

  e.parameters_bytes = static_cast<uint64_t>(tensor_bytes);
  e.gradients_bytes = static_cast<uint64_t>(tensor_bytes);
  e.reduction_bytes = static_cast<uint64_t>(reduction);
  e.ranks = spec.parallel.ranks;
  e.adam_m_bytes = static_cast<uint64_t>(tensor_bytes);
  e.adam_v_bytes = static_cast<uint64_t>(tensor_bytes);
  e.activations_bytes = static_cast<uint64_t>(activations);
  e.checkpoint_snapshot_bytes = static_cast<uint64_t>(snapshots);
  e.memory_copies_bytes = static_cast<uint64_t>(copies);
  e.token_data_bytes = token_data_bytes;
  e.total_bytes = static_cast<uint64_t>(total);
  return e;
}

void require_memory_fits(const config::run_spec& spec, uint64_t available_bytes,
                         uint64_t token_data_bytes) {
  const run_memory_estimate e = estimate_run_memory(spec, token_data_bytes);
  if (e.total_bytes <= available_bytes) return;

  std::string parts = fmt::format(
      "  per rank, x {} rank(s):\n"
      "  parameters            {:>12}  ({} fp32 values)\n"
      "  gradients             {:>12}\n"
      "  exact-sum buffers     {:>12}  (parallel.reduction = \"{}\", {} slots)\n"
      "  activations           {:>12}  (B {} x T {})\n"
      "  split among the ranks:\n"
      "  AdamW moments m       {:>12}\n"
      "  AdamW moments v       {:>12}\n"
      "  checkpoint snapshots  {:>12}  (weights, m and v; checkpoint.every_steps = {})\n"
      "  in-memory copies      {:>12}  (own and buddy's, kept and filling; "
      "fault_tolerance.replica_every_steps = {})\n",
      e.ranks, gib(e.parameters_bytes), e.parameter_count, gib(e.gradients_bytes),
      gib(e.reduction_bytes), spec.parallel.reduction, spec.data.slots,
      gib(e.activations_bytes), e.activation_micro_batch, e.activation_seq_len,
      gib(e.adam_m_bytes), gib(e.adam_v_bytes), gib(e.checkpoint_snapshot_bytes),
      spec.checkpoint.every_steps, gib(e.memory_copies_bytes),
      spec.fault_tolerance.replica_every_steps);
  if (e.token_data_bytes > 0)
    parts += fmt::format("  token data            {:>12}\n", gib(e.token_data_bytes));

  std::string hints_prefix;
  std::string activation_keys = fmt::format(
      "data.micro_batch ({}) or data.seq_len ({}) for the activations (raise data.slots to "
      "keep the global batch)",
      spec.data.micro_batch, spec.data.seq_len);
  if (e.activation_seq_len > spec.data.seq_len)
    activation_keys += fmt::format(", or run.sample_tokens ({}), whose sample window ({}) is "
                                   "longer than data.seq_len",
                                   spec.run.sample_tokens, e.activation_seq_len);
  if (e.ranks > 1) {
    hints_prefix = fmt::format("parallel.ranks ({}): every rank of this process holds a model",
                               e.ranks);
  }
  std::vector<shrink_hint> hints = {
      {e.parameters_bytes + e.gradients_bytes + e.adam_m_bytes + e.adam_v_bytes,
       fmt::format("model.layers ({}) or model.channels ({}) for the parameters, gradients "
                   "and moments",
                   spec.model.layers, spec.model.channels)},
      {e.activations_bytes, activation_keys},
  };
  if (e.reduction_bytes > 0)
    hints.push_back({e.reduction_bytes * static_cast<uint64_t>(e.ranks),
                     "parallel.reduction = \"fast\" or fewer data.slots per rank for the "
                     "exact-sum buffers"});
  if (!hints_prefix.empty())
    hints.push_back({(e.parameters_bytes + e.gradients_bytes) * static_cast<uint64_t>(e.ranks - 1),
                     hints_prefix});
  if (e.memory_copies_bytes > 0)
    hints.push_back({e.memory_copies_bytes,
                     "fault_tolerance.replica_every_steps = 0 for no in-memory copies (every "
                     "recovery then reads the newest checkpoint)"});
  if (e.checkpoint_snapshot_bytes > 0)
    hints.push_back({e.checkpoint_snapshot_bytes,
                     "checkpoint.every_steps = 0 for no snapshot buffers (and no checkpoints)"});
  std::stable_sort(hints.begin(), hints.end(),
                   [](const shrink_hint& a, const shrink_hint& b) { return a.bytes > b.bytes; });
  std::string lower;
  for (const shrink_hint& hint : hints) lower += "\n  - " + hint.keys;

  LZ_THROW(lz::spec_error,
           "the run needs about {} of memory ({} bytes), more than the {} ({} bytes) "
           "available:\n{}to fit, lower the largest part:{}",
           gib(e.total_bytes), e.total_bytes, gib(available_bytes), available_bytes, parts,
           lower);
}

uint64_t physical_memory_bytes() {
  uint64_t bytes = 0;
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_size = sysconf(_SC_PAGE_SIZE);
  if (pages > 0 && page_size > 0) {
    bytes = static_cast<uint64_t>(pages) * static_cast<uint64_t>(page_size);
  } else {
    std::ifstream meminfo("/proc/meminfo");
    std::string name;
    uint64_t kib = 0;
    while (meminfo >> name >> kib) {
      if (name == "MemTotal:") {
        bytes = kib * 1024;
        break;
      }
      meminfo.ignore(256, '\n');
    }
  }
  // A container's limit: cgroup v2, then v1 ("max" or a huge number when unlimited).
  for (const char* path : {"/sys/fs/cgroup/memory.max",
                           "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    std::ifstream in(path);
    uint64_t limit = 0;
    if (in >> limit && limit > 0 && (bytes == 0 || limit < bytes)) bytes = limit;
  }
  return bytes;
}

}  // namespace lz::engine
