// spec_validate.cpp: the range and cross-field rules of a run spec, checked all at once.
#include "config/spec_validate.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <optional>
#include <string_view>

#include "config/checked_math.hpp"
#include "config/spec_schema.hpp"

namespace lz::config {
namespace {

constexpr int64_t max_vocab_size = 65536;  // tokens are stored as uint16

// Upper bounds of the size and count keys: far above any real run, and low enough that
// every size derived from them stays far below 2^63 (parameters < 2^47 elements; with
// the derived limits below, every activation buffer < 2^53 and every sample index < 2^60).
constexpr int64_t max_steps = 1'000'000'000;         // run.steps and every *_steps key
constexpr int64_t max_val_batches = 1'000'000;
constexpr int64_t max_sample_tokens = 1'000'000;
constexpr int64_t max_seq_len_bound = 1'048'576;       // 2^20 positions
constexpr int64_t max_layers = 1024;
constexpr int64_t max_channels = 65536;
constexpr int64_t max_micro_batch = 65536;
constexpr int64_t max_slots = 65536;
constexpr int64_t max_ranks = 65536;
constexpr int64_t max_threads_per_rank = 1024;
constexpr int64_t max_keep_last = 1'000'000;
// Limits on products of keys: what one micro slot, one layer's attention scores and one
// optimizer step may hold.
constexpr int64_t max_micro_slot_tokens = int64_t{1} << 24;  // micro_batch x seq_len
constexpr int64_t max_attention_scores = int64_t{1} << 40;   // micro_batch x heads x seq_len^2
constexpr int64_t max_step_tokens = int64_t{1} << 30;        // slots x micro_batch x seq_len
constexpr std::array<std::string_view, 5> log_levels = {"trace", "debug", "info", "warn",
                                                        "error"};

// Collects problems, at most one per key (the first check that fails); each check names
// the key, and its message says what to do. Float comparisons are written so that NaN
// fails them.
class rule_book {
public:
  void require(bool ok, std::string_view key_path, std::string message) {
    const auto same_key = [&](const spec_problem& p) { return p.key_path == key_path; };
    if (ok || std::any_of(problems_.begin(), problems_.end(), same_key)) return;
    problems_.push_back({std::string(key_path), std::move(message)});
  }
  void at_least(int64_t value, int64_t min, std::string_view key_path, std::string_view fix) {
    require(value >= min, key_path, fmt::format("must be >= {}, got {}: {}", min, value, fix));
  }
  void at_most(int64_t value, int64_t max, std::string_view key_path, std::string_view fix) {
    require(value <= max, key_path, fmt::format("must be <= {}, got {}: {}", max, value, fix));
  }
  // min <= value <= max, reported as the bound that is broken.
  void in_range(int64_t value, int64_t min, int64_t max, std::string_view key_path,
                std::string_view fix_low, std::string_view fix_high) {
    at_least(value, min, key_path, fix_low);
    at_most(value, max, key_path, fix_high);
  }
  // A product of keys at most `max`; `what` names the product and its factors.
  void product_at_most(std::optional<int64_t> product, int64_t max, std::string_view key_path,
                       std::string_view what, std::string_view fix) {
    const std::string value = product ? fmt::format("{}", *product) : "more than 2^63";
    require(product && *product <= max, key_path,
            fmt::format("{} = {} must be <= {}: {}", what, value, max, fix));
  }
  void positive(double value, std::string_view key_path, std::string_view fix) {
    require(value > 0, key_path, fmt::format("must be > 0, got {}: {}", value, fix));
  }
  void non_negative(double value, std::string_view key_path, std::string_view fix) {
    require(value >= 0, key_path, fmt::format("must be >= 0, got {}: {}", value, fix));
  }
  void fraction(double value, bool one_allowed, std::string_view key_path,
                std::string_view fix) {
    const bool ok = value >= 0 && (one_allowed ? value <= 1 : value < 1);
    require(ok, key_path,
            fmt::format("must be in [0, 1{}, got {}: {}", one_allowed ? "]" : ")", value, fix));
  }
  std::vector<spec_problem> take() { return std::move(problems_); }

private:
  std::vector<spec_problem> problems_;
};

void check_run(const run_section& run, rule_book& rules) {
  rules.in_range(run.steps, 1, max_steps, "run.steps", "train for at least one optimizer step",
                 "no run takes more steps; lower run.steps");
  rules.at_least(static_cast<int64_t>(run.seed), 0, "run.seed", "use a non-negative seed");
  rules.in_range(run.val_every_steps, 0, max_steps, "run.val_every_steps",
                 "use 0 to validate only at the end",
                 "lower it, or use 0 to validate only at the end");
  rules.in_range(run.val_batches, 1, max_val_batches, "run.val_batches",
                 "evaluate at least one validation micro-batch",
                 "a validation loss needs far fewer micro-batches; lower run.val_batches");
  rules.in_range(run.sample_tokens, 0, max_sample_tokens, "run.sample_tokens",
                 "use 0 to skip sampling", "lower run.sample_tokens, or use 0 to skip sampling");
  rules.positive(run.sample_temperature, "run.sample_temperature",
                 "1.0 samples the model's distribution, lower values are greedier");
}

void check_model(const model_section& model, rule_book& rules) {
  rules.require(model.vocab_size >= 2 && model.vocab_size <= max_vocab_size, "model.vocab_size",
                fmt::format("must be in [2, {}] because tokens are stored as uint16, got {}: "
                            "use 256 for byte-level or 50257 for GPT-2 tokens",
                            max_vocab_size, model.vocab_size));
  rules.require(model.padded_vocab_size == 0 || model.padded_vocab_size >= model.vocab_size,
                "model.padded_vocab_size",
                fmt::format("must be 0 or >= model.vocab_size ({}), got {}: use 0 to round "
                            "the vocabulary up to a multiple of 128",
                            model.vocab_size, model.padded_vocab_size));
  rules.at_most(model.padded_vocab_size, max_vocab_size, "model.padded_vocab_size",
                "tokens are stored as uint16, so no row past 65536 is ever used; use 0 to "
                "round the vocabulary up to a multiple of 128");
  rules.in_range(model.max_seq_len, 1, max_seq_len_bound, "model.max_seq_len",
                 "set the longest sequence (maxT)",
                 "lower model.max_seq_len (GPT-2 uses 1024)");
  rules.in_range(model.layers, 1, max_layers, "model.layers",
                 "use at least one transformer block",
                 "lower model.layers (GPT-2 XL has 48 blocks)");
  rules.in_range(model.channels, 1, max_channels, "model.channels", "set the model width C",
                 "lower model.channels (GPT-2 XL is 1600 wide)");
  rules.at_least(model.heads, 1, "model.heads", "use at least one attention head");
  if (model.channels >= 1) {
    rules.require(model.heads <= model.channels, "model.heads",
                  fmt::format("must be <= model.channels ({}), got {}: a head needs at least "
                              "one channel; use fewer heads (GPT-2 uses channels / 64)",
                              model.channels, model.heads));
  }
  if (model.heads >= 1 && model.channels >= 1)
    rules.require(model.channels % model.heads == 0, "model.heads",
                  fmt::format("model.channels ({}) must be divisible by model.heads ({}): "
                              "pick a head count that divides the channels",
                              model.channels, model.heads));
}

// Products of data and model keys: what one micro slot, one layer's attention scores and
// one optimizer step hold. Checked only once each factor is in its own range.
void check_batch_products(const run_spec& spec, rule_book& rules) {
  const data_section& data = spec.data;
  const int64_t heads = spec.model.heads;
  const bool factors_valid = data.seq_len >= 1 && data.seq_len <= max_seq_len_bound &&
                             data.micro_batch >= 1 && data.micro_batch <= max_micro_batch &&
                             data.slots >= 1 && data.slots <= max_slots && heads >= 1 &&
                             heads <= max_channels;
  if (!factors_valid) return;
  rules.product_at_most(
      checked_product({data.micro_batch, data.seq_len}), max_micro_slot_tokens,
      "data.micro_batch",
      fmt::format("data.micro_batch ({}) x data.seq_len ({}) tokens per micro slot",
                  data.micro_batch, data.seq_len),
      "lower data.micro_batch or data.seq_len; raise data.slots for a larger global batch");
  rules.product_at_most(
      checked_product({data.micro_batch, heads, data.seq_len, data.seq_len}),
      max_attention_scores, "data.seq_len",
      fmt::format("data.micro_batch ({}) x model.heads ({}) x data.seq_len ({})^2 attention "
                  "scores per layer",
                  data.micro_batch, heads, data.seq_len),
      "every layer stores its attention matrix; lower data.seq_len, data.micro_batch or "
      "model.heads");
  rules.product_at_most(
      checked_product({data.slots, data.micro_batch, data.seq_len}), max_step_tokens,
      "data.slots",
      fmt::format("data.slots ({}) x data.micro_batch ({}) x data.seq_len ({}) tokens per "
                  "optimizer step",
                  data.slots, data.micro_batch, data.seq_len),
      "lower data.slots, data.micro_batch or data.seq_len");
}

void check_data(const data_section& data, const run_spec& spec, rule_book& rules) {
  rules.require(!data.train_shards.empty(), "data.train_shards",
                "must not be empty: set a glob of token shards, e.g. \"data/kjv/train_*.bin\"");
  rules.require(data.seq_len >= 1 && data.seq_len <= spec.model.max_seq_len, "data.seq_len",
                fmt::format("must be in [1, model.max_seq_len ({})], got {}: shorten the "
                            "sequences or raise model.max_seq_len",
                            spec.model.max_seq_len, data.seq_len));
  rules.in_range(data.micro_batch, 1, max_micro_batch, "data.micro_batch",
                 "use at least one sequence per slot",
                 "lower data.micro_batch; raise data.slots for a larger global batch");
  rules.in_range(data.slots, 1, max_slots, "data.slots",
                 "use at least one micro slot per batch", "lower data.slots");
  if (data.slots >= 1 && spec.parallel.ranks >= 1)
    rules.require(data.slots >= spec.parallel.ranks, "data.slots",
                  fmt::format("must be >= parallel.ranks ({}), got {}: every rank needs at "
                              "least one slot; raise data.slots or lower parallel.ranks",
                              spec.parallel.ranks, data.slots));
  check_batch_products(spec, rules);
}

void check_optimizer(const optimizer_section& opt, rule_book& rules) {
  rules.positive(opt.lr, "optimizer.lr", "set a positive peak learning rate, e.g. 1e-3");
  rules.fraction(opt.min_lr_ratio, true, "optimizer.min_lr_ratio",
                 "the final lr is this fraction of lr (1: constant lr)");
  rules.in_range(opt.warmup_steps, 0, max_steps, "optimizer.warmup_steps",
                 "use 0 for no warmup", "lower optimizer.warmup_steps");
  rules.fraction(opt.beta1, false, "optimizer.beta1", "the usual value is 0.9");
  rules.fraction(opt.beta2, false, "optimizer.beta2", "the usual value is 0.95 or 0.999");
  rules.positive(opt.eps, "optimizer.eps", "the usual value is 1e-8");
  rules.non_negative(opt.weight_decay, "optimizer.weight_decay", "use 0 for no decay");
  rules.non_negative(opt.grad_clip, "optimizer.grad_clip", "use 0 for no clipping");
}

void check_parallel(const parallel_section& parallel, rule_book& rules) {
  rules.in_range(parallel.ranks, 1, max_ranks, "parallel.ranks", "run at least one rank",
                 "lower parallel.ranks");
  rules.require(parallel.nodes >= 1 && parallel.nodes <= std::max<int64_t>(parallel.ranks, 1),
                "parallel.nodes",
                fmt::format("must be in [1, parallel.ranks ({})], got {}: every node needs "
                            "at least one rank",
                            parallel.ranks, parallel.nodes));
  rules.in_range(parallel.threads_per_rank, 1, max_threads_per_rank,
                 "parallel.threads_per_rank", "use at least one CPU thread per rank",
                 "use at most the cores of one machine");
  rules.require(parallel.reduction == "exact" || parallel.reduction == "fast",
                "parallel.reduction",
                fmt::format("unknown reduction \"{}\": use \"exact\" (the same weights on "
                            "any number of ranks) or \"fast\"", parallel.reduction));
  rules.require(parallel.communicator == "gloo", "parallel.communicator",
                parallel.communicator == "inproc"
                    ? std::string("\"inproc\" connects ranks that are threads of one process, "
                                  "but the ranks of a run are processes of their own: use "
                                  "\"gloo\"")
                    : fmt::format("unknown communicator \"{}\": use \"gloo\"",
                                  parallel.communicator));
}

void check_checkpoint(const checkpoint_section& checkpoint, rule_book& rules) {
  rules.in_range(checkpoint.every_steps, 0, max_steps, "checkpoint.every_steps",
                 "use 0 to never save", "lower it, or use 0 to never save");
  rules.in_range(checkpoint.keep_last, 1, max_keep_last, "checkpoint.keep_last",
                 "keep at least the newest checkpoint", "lower checkpoint.keep_last");
  rules.in_range(checkpoint.keep_every, 0, max_steps, "checkpoint.keep_every",
                 "use 0 to keep only the newest ones",
                 "lower it, or use 0 to keep only the newest ones");
  rules.require(checkpoint.when_busy == "wait" || checkpoint.when_busy == "skip",
                "checkpoint.when_busy",
                fmt::format("unknown policy \"{}\": use \"wait\" or \"skip\"",
                            checkpoint.when_busy));
}

void check_fault_tolerance(const run_spec& spec, rule_book& rules) {
  const fault_tolerance_section& ft = spec.fault_tolerance;
  constexpr int64_t day_ms = int64_t{24} * 3600 * 1000;
  rules.in_range(ft.heartbeat_interval_ms, 10, 60000, "fault_tolerance.heartbeat_interval_ms",
                 "heartbeats more often than every 10 ms only load the coordinator",
                 "a minute between heartbeats hides every loss for a minute");
  // The control links of node agents and workers heartbeat every 500 ms from their start,
  // before they have read the spec: a timeout must cover two of those as well.
  rules.in_range(ft.heartbeat_timeout_ms, std::max<int64_t>(2 * ft.heartbeat_interval_ms, 1000),
                 day_ms, "fault_tolerance.heartbeat_timeout_ms",
                 "it must cover at least two heartbeat intervals (and 1000 ms), or a node that "
                 "is merely between two heartbeats counts as lost",
                 "use at most a day");
  rules.require(ft.hang_factor >= 1.0 && ft.hang_factor <= 1000.0, "fault_tolerance.hang_factor",
                fmt::format("must be in [1, 1000], got {}: below 1 an ordinary slow step counts "
                            "as a hang", ft.hang_factor));
  rules.in_range(ft.hang_grace_ms, 0, day_ms, "fault_tolerance.hang_grace_ms",
                 "use 0 for no grace", "use at most a day");
  rules.in_range(ft.hang_initial_timeout_ms, 100, day_ms,
                 "fault_tolerance.hang_initial_timeout_ms",
                 "the first steps of a generation include start-up work: allow at least 100 ms",
                 "use at most a day");
  const int64_t ranks = spec.parallel.ranks;
  const int64_t max_ranks_resolved = ft.resolved_max_ranks(ranks);
  rules.require(ft.min_ranks >= 1 && ft.min_ranks <= ranks, "fault_tolerance.min_ranks",
                fmt::format("must be in [1, parallel.ranks ({})], got {}", ranks, ft.min_ranks));
  rules.require(ft.max_ranks == 0 || (ft.max_ranks >= ranks && ft.max_ranks <= max_ranks),
                "fault_tolerance.max_ranks",
                fmt::format("must be 0 (parallel.ranks) or in [parallel.ranks ({}), {}], got {}",
                            ranks, max_ranks, ft.max_ranks));
  rules.require(ft.max_ranks == 0 || max_ranks_resolved <= spec.data.slots, "fault_tolerance.max_ranks",
                fmt::format("{} ranks need at least {} micro slots, but data.slots is {}: a "
                            "rank without a slot would hold an optimizer range and idle through "
                            "every step; raise data.slots (the global batch) or lower "
                            "fault_tolerance.max_ranks", max_ranks_resolved,
                            max_ranks_resolved, spec.data.slots));
  rules.in_range(ft.replace_timeout_ms, 0, day_ms, "fault_tolerance.replace_timeout_ms",
                 "use 0 to shrink at once", "use at most a day");
  rules.in_range(ft.respawn_retries, 0, 1000, "fault_tolerance.respawn_retries",
                 "use 0 to quarantine a slot at its first failure", "use at most 1000");
  rules.in_range(ft.respawn_backoff_ms, 0, 600000, "fault_tolerance.respawn_backoff_ms",
                 "use 0 to respawn at once", "use at most 10 minutes");
  rules.in_range(ft.replica_every_steps, 0, max_steps, "fault_tolerance.replica_every_steps",
                 "use 0 to recover from disk only", "lower it, or use 0 for disk only");
  rules.require(spec.run.steps < 1 || ft.replica_every_steps <= spec.run.steps,  // else: run.steps's
                "fault_tolerance.replica_every_steps",
                fmt::format("{} is more than run.steps ({}): no in-memory copy would ever be "
                            "made; use at most run.steps, or 0 to recover from disk only",
                            ft.replica_every_steps, spec.run.steps));
  rules.in_range(ft.max_nonfinite_steps, 1, 1000, "fault_tolerance.max_nonfinite_steps",
                 "stop at the first non-finite step with 1", "use at most 1000");
}

void check_logging(const logging_section& logging, rule_book& rules) {
  const bool known =
      std::find(log_levels.begin(), log_levels.end(), logging.level) != log_levels.end();
  rules.require(known, "logging.level",
                fmt::format("unknown level \"{}\": use one of trace, debug, info, warn, error",
                            logging.level));
}

// Every float key: TOML allows nan and inf, none of our keys does.
void check_finite(const run_spec& spec, rule_book& rules) {
  for (const spec_key& key : spec_keys()) {
    if (key.type != value_type::floating) continue;
    const double value = std::get<double>(key.get(spec));
    rules.require(std::isfinite(value), key.path(),
                  fmt::format("must be a finite number, got {}", value));
  }
}

}  // namespace

std::vector<spec_problem> validate_spec(const run_spec& spec) {
  rule_book rules;
  check_finite(spec, rules);
  check_run(spec.run, rules);
  check_model(spec.model, rules);
  check_data(spec.data, spec, rules);
  check_optimizer(spec.optimizer, rules);
  check_parallel(spec.parallel, rules);
  check_checkpoint(spec.checkpoint, rules);
  check_fault_tolerance(spec, rules);
  check_logging(spec.logging, rules);
  return rules.take();
}

}  // namespace lz::config
