// spec_schema.cpp: the table of run spec keys, and the look-ups over it.
#include "config/spec_schema.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <type_traits>
#include <vector>

namespace lz::config {
namespace {

template <typename T>
constexpr value_type type_of() {
  if constexpr (std::is_same_v<T, bool>) return value_type::boolean;
  else if constexpr (std::is_integral_v<T>) return value_type::integer;
  else if constexpr (std::is_floating_point_v<T>) return value_type::floating;
  else return value_type::string;
}

// TOML integers are signed 64-bit, so a uint64_t field (run.seed) travels as int64_t:
// a negative value set through it reads back negative, and validation rejects it.
template <typename T>
spec_value to_value(const T& field) {
  if constexpr (std::is_same_v<T, uint64_t>) return static_cast<int64_t>(field);
  else return field;
}

template <typename T>
void from_value(const spec_value& value, T& field) {
  if constexpr (std::is_same_v<T, uint64_t>) field = static_cast<uint64_t>(std::get<int64_t>(value));
  else if constexpr (std::is_same_v<T, bool>) field = std::get<bool>(value);
  else if constexpr (std::is_integral_v<T>) field = std::get<int64_t>(value);
  else if constexpr (std::is_floating_point_v<T>) field = std::get<double>(value);
  else field = std::get<std::string>(value);
}

template <typename Class, typename Member>
Member member_type(Member Class::*);

template <auto Section, auto Field>
spec_value get_field(const run_spec& spec) {
  return to_value((spec.*Section).*Field);
}

template <auto Section, auto Field>
void set_field(run_spec& spec, const spec_value& value) {
  from_value(value, (spec.*Section).*Field);
}

template <auto Section, auto Field>
constexpr spec_key make_key(std::string_view section, std::string_view name,
                            std::string_view help, resume_rule resume,
                            std::string_view resume_reason) {
  using field_type = decltype(member_type(Field));
  return {section, name, type_of<field_type>(), help, resume, resume_reason,
          &get_field<Section, Field>, &set_field<Section, Field>};
}

// LZ_SPEC_KEY(model, layers, "help", must_match, "why") names run_spec::model and
// model_section::layers, and whether the key may change when the run resumes.
#define LZ_SPEC_KEY(section, name, help, resume, resume_reason)                           \
  make_key<&run_spec::section, &section##_section::name>(#section, #name, help,          \
                                                         resume_rule::resume, resume_reason)

// Reasons shared by several keys.
constexpr std::string_view saved_shape = "it shapes the saved weights and moments";
constexpr std::string_view sample_only = "it only shapes the end-of-run sample";
constexpr std::string_view hyper_parameter =
    "an optimizer setting; the saved weights and moments stay valid under a new one";
constexpr std::string_view save_policy = "when and how checkpoints are saved or kept";
constexpr std::string_view recovery = "how failures are handled, not what is computed";

constexpr spec_key keys[] = {
  LZ_SPEC_KEY(run, name, "run name, used in logs and checkpoints",
              may_change, "a label in logs"),
  LZ_SPEC_KEY(run, steps, "optimizer steps to train",
              may_change, "extends or shortens the run (not below its newest checkpoint)"),
  LZ_SPEC_KEY(run, seed, "seed for init, data order and sampling",
              must_match, "it sets the data order of every step"),
  LZ_SPEC_KEY(run, val_every_steps, "validation loss every N steps (0: only at the end)",
              may_change, "when validation runs, not what is trained"),
  LZ_SPEC_KEY(run, val_batches, "micro-batches of the validation set per evaluation",
              may_change, "how much is validated, not what is trained"),
  LZ_SPEC_KEY(run, sample_tokens, "tokens sampled from the model at the end (0: none)",
              may_change, sample_only),
  LZ_SPEC_KEY(run, sample_temperature, "softmax temperature for sampling",
              may_change, sample_only),

  LZ_SPEC_KEY(model, vocab_size, "V: real vocabulary (256 byte-level, 50257 GPT-2)",
              must_match, "it sets the tokens the saved model reads and predicts"),
  LZ_SPEC_KEY(model, padded_vocab_size, "Vp: rows of wte (0: V rounded up to 128)",
              must_match, saved_shape),
  LZ_SPEC_KEY(model, max_seq_len, "maxT: longest sequence, rows of wpe",
              must_match, saved_shape),
  LZ_SPEC_KEY(model, layers, "L: transformer blocks", must_match, saved_shape),
  LZ_SPEC_KEY(model, heads, "NH: attention heads (must divide channels)",
              must_match, "it sets how the saved weights split into heads"),
  LZ_SPEC_KEY(model, channels, "C: width of the residual stream", must_match, saved_shape),
  LZ_SPEC_KEY(model, init_from, "llm.c GPT-2 .bin to start from (\"\": random init)",
              may_change, "read only at step 0; a resumed run starts from its checkpoint"),

  LZ_SPEC_KEY(data, train_shards, "glob of llm.c token shards for training",
              by_content, "the files may move; the run compares their fingerprint"),
  LZ_SPEC_KEY(data, val_shards, "glob of llm.c token shards for validation",
              may_change, "validation only, not what is trained"),
  LZ_SPEC_KEY(data, seq_len, "T: tokens per sequence",
              must_match, "it cuts the token stream into windows: the data order"),
  LZ_SPEC_KEY(data, micro_batch, "B: sequences per micro slot",
              must_match, "it sets the global batch: the data order"),
  LZ_SPEC_KEY(data, slots, "micro slots per global batch, split among ranks",
              must_match, "it sets the global batch and the gradient-sum tree"),

  LZ_SPEC_KEY(optimizer, lr, "peak learning rate", may_change, hyper_parameter),
  LZ_SPEC_KEY(optimizer, min_lr_ratio, "final lr as a fraction of lr (cosine decay)",
              may_change, hyper_parameter),
  LZ_SPEC_KEY(optimizer, warmup_steps, "linear warmup steps", may_change, hyper_parameter),
  LZ_SPEC_KEY(optimizer, beta1, "AdamW first-moment decay", may_change, hyper_parameter),
  LZ_SPEC_KEY(optimizer, beta2, "AdamW second-moment decay", may_change, hyper_parameter),
  LZ_SPEC_KEY(optimizer, eps, "AdamW epsilon", may_change, hyper_parameter),
  LZ_SPEC_KEY(optimizer, weight_decay, "decoupled weight decay, matrices only",
              may_change, hyper_parameter),
  LZ_SPEC_KEY(optimizer, grad_clip, "max global gradient norm (0: no clipping)",
              may_change, hyper_parameter),

  LZ_SPEC_KEY(parallel, ranks, "data-parallel ranks (world size)",
              may_change, "the world may resize at any step; slots fix the batch"),
  LZ_SPEC_KEY(parallel, nodes, "node agents the ranks are spread over",
              may_change, "where the ranks run, not what they compute"),
  LZ_SPEC_KEY(parallel, threads_per_rank, "CPU threads per rank (OpenMP)",
              may_change, "speed only (bitwise equal losses need the same value)"),
  LZ_SPEC_KEY(parallel, reduction,
              "\"exact\": the same weights on any number of ranks; \"fast\": the "
              "communicator's own sum, reproducible at a fixed world size only",
              may_change, "how the gradient is summed; a change alters the result from then on"),
  LZ_SPEC_KEY(parallel, communicator,
              "how the rank processes talk: \"gloo\" (TCP)",
              may_change, "how ranks talk, not what they compute"),

  LZ_SPEC_KEY(checkpoint, every_steps, "save every N steps (0: never)",
              may_change, save_policy),
  LZ_SPEC_KEY(checkpoint, dir, "shard files go to DIR/RUN_ID (\"\": STATE_DIR/checkpoints)",
              may_change, "the run checks that it resolves to the recorded place"),
  LZ_SPEC_KEY(checkpoint, keep_last, "keep the newest K checkpoints", may_change, save_policy),
  LZ_SPEC_KEY(checkpoint, keep_every, "also keep every M-th step (0: none)",
              may_change, save_policy),
  LZ_SPEC_KEY(checkpoint, async, "write checkpoints in the background",
              may_change, save_policy),
  LZ_SPEC_KEY(checkpoint, when_busy, "a save due while one is in flight: \"wait\" or \"skip\"",
              may_change, save_policy),

  LZ_SPEC_KEY(fault_tolerance, heartbeat_interval_ms,
              "node agents and workers send a heartbeat this often (ms)", may_change, recovery),
  LZ_SPEC_KEY(fault_tolerance, heartbeat_timeout_ms,
              "a node agent or worker silent this long (ms) is lost", may_change, recovery),
  LZ_SPEC_KEY(fault_tolerance, hang_factor,
              "a rank hangs when no step finishes within hang_factor x p99 step time + "
              "hang_grace_ms", may_change, recovery),
  LZ_SPEC_KEY(fault_tolerance, hang_grace_ms, "added to the hang timeout (ms)",
              may_change, recovery),
  LZ_SPEC_KEY(fault_tolerance, hang_initial_timeout_ms,
              "the hang timeout (ms) until a generation has timed 5 steps", may_change,
              recovery),
  LZ_SPEC_KEY(fault_tolerance, min_ranks,
              "the world shrinks no further; with fewer live slots the run stops",
              may_change, recovery),
  LZ_SPEC_KEY(fault_tolerance, max_ranks,
              "the world grows no further when nodes join (0: parallel.ranks)",
              may_change, recovery),
  LZ_SPEC_KEY(fault_tolerance, replace_timeout_ms,
              "how long (ms) a smaller world waits for a replacement node before it shrinks",
              may_change, recovery),
  LZ_SPEC_KEY(fault_tolerance, respawn_retries,
              "faults in a row of one slot before it is quarantined (0: a fault stops the run)",
              may_change, recovery),
  LZ_SPEC_KEY(fault_tolerance, respawn_backoff_ms,
              "wait (ms) before respawning a failed slot; doubles with each failure in a row",
              may_change, recovery),
  LZ_SPEC_KEY(fault_tolerance, replica_every_steps,
              "keep an in-memory snapshot and a buddy's copy every N steps (0: recover from "
              "disk only)", may_change, recovery),
  LZ_SPEC_KEY(fault_tolerance, max_nonfinite_steps,
              "a non-finite step is discarded and retried; this many in a row stop the run",
              may_change, recovery),

  LZ_SPEC_KEY(logging, level, "trace, debug, info, warn or error",
              may_change, "only what is logged"),
};

#undef LZ_SPEC_KEY

constexpr std::array<std::string_view, 8> sections = {
  "run", "model", "data", "optimizer", "parallel", "checkpoint", "fault_tolerance", "logging"};
constexpr std::array<std::string_view, 2> reserved_sections = {"chaos", "security"};

std::string to_lower(std::string_view text) {
  std::string lower(text);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower;
}

// Edit distance counting insertions, deletions, substitutions and swaps of neighbours.
size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

// The candidate nearest to `text`, if within a quarter of its length (1 to 3 edits).
template <typename Candidates>
std::optional<std::string> closest(std::string_view text, const Candidates& candidates) {
  const std::string lower = to_lower(text);
  std::optional<std::string> best;
  size_t best_distance = 0;
  for (const auto& candidate : candidates) {
    const std::string name(candidate);
    const size_t distance = edit_distance(lower, name);
    const size_t allowed = std::clamp<size_t>(std::max(lower.size(), name.size()) / 4, 1, 3);
    if (distance <= allowed && (!best || distance < best_distance)) {
      best = name;
      best_distance = distance;
    }
  }
  return best;
}

std::string escape_toml_string(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\f': out += "\\f"; break;
      case '\r': out += "\\r"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
          out += fmt::format("\\u{:04X}", static_cast<unsigned char>(c));
        else
          out += c;
    }
  }
  return out + "\"";
}

std::string format_float(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  std::string text = fmt::format("{}", value);  // shortest text that reads back exactly
  if (text.find_first_of(".e") == std::string::npos) text += ".0";
  return text;
}

}  // namespace

std::string spec_key::path() const { return fmt::format("{}.{}", section, name); }

std::span<const spec_key> spec_keys() { return keys; }

std::vector<std::string> keys_with_resume_rule(resume_rule rule) {
  std::vector<std::string> paths;
  for (const spec_key& key : keys)
    if (key.resume == rule) paths.push_back(key.path());
  return paths;
}

std::string_view describe(resume_rule rule) {
  switch (rule) {
    case resume_rule::must_match: return "must match";
    case resume_rule::may_change: return "may change";
    case resume_rule::by_content: return "compared by content";
  }
  return "unknown";
}

const spec_key* find_spec_key(std::string_view key_path) {
  for (const spec_key& key : keys)
    if (key_path.size() == key.section.size() + 1 + key.name.size() &&
        key_path.starts_with(key.section) && key_path[key.section.size()] == '.' &&
        key_path.ends_with(key.name))
      return &key;
  return nullptr;
}

std::span<const std::string_view> spec_sections() { return sections; }
std::span<const std::string_view> reserved_spec_sections() { return reserved_sections; }

bool is_reserved_section(std::string_view section) {
  return std::find(reserved_sections.begin(), reserved_sections.end(), section) !=
         reserved_sections.end();
}

bool is_known_section(std::string_view section) {
  return is_reserved_section(section) ||
         std::find(sections.begin(), sections.end(), section) != sections.end();
}

std::optional<std::string> suggest_key_path(std::string_view key_path) {
  // A right key in the wrong section ("optimizer.seed", or "steps" at the top level).
  const size_t dot = key_path.rfind('.');
  const std::string name = to_lower(dot == std::string_view::npos ? key_path
                                                                  : key_path.substr(dot + 1));
  for (const spec_key& key : keys)
    if (key.name == name) return key.path();
  std::vector<std::string> paths;
  for (const spec_key& key : keys) paths.push_back(key.path());
  return closest(key_path, paths);
}

std::optional<std::string> suggest_section(std::string_view section) {
  std::vector<std::string_view> names(sections.begin(), sections.end());
  names.insert(names.end(), reserved_sections.begin(), reserved_sections.end());
  return closest(section, names);
}

std::string_view describe(value_type type) {
  switch (type) {
    case value_type::integer: return "an integer";
    case value_type::floating: return "a float";
    case value_type::boolean: return "a boolean";
    case value_type::string: return "a string";
  }
  return "a value";
}

std::string format_value(const spec_value& value) {
  return std::visit(
      [](const auto& v) -> std::string {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::string>) return escape_toml_string(v);
        else if constexpr (std::is_same_v<T, double>) return format_float(v);
        else if constexpr (std::is_same_v<T, bool>) return v ? "true" : "false";
        else return fmt::format("{}", v);
      },
      value);
}

}  // namespace lz::config
