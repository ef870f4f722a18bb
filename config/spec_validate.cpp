// spec_validate.cpp: the range and cross-field rules of a run spec, checked all at once.
#include "config/spec_validate.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <string_view>

#include "config/spec_schema.hpp"

namespace lz::config {
namespace {

constexpr int64_t max_vocab_size = 65536;  // tokens are stored as uint16
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
  rules.at_least(run.steps, 1, "run.steps", "train for at least one optimizer step");
  rules.at_least(static_cast<int64_t>(run.seed), 0, "run.seed", "use a non-negative seed");
  rules.at_least(run.val_every_steps, 0, "run.val_every_steps",
                 "use 0 to validate only at the end");
  rules.at_least(run.val_batches, 1, "run.val_batches",
                 "evaluate at least one validation micro-batch");
  rules.at_least(run.sample_tokens, 0, "run.sample_tokens", "use 0 to skip sampling");
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
  rules.at_least(model.max_seq_len, 1, "model.max_seq_len", "set the longest sequence (maxT)");
  rules.at_least(model.layers, 1, "model.layers", "use at least one transformer block");
  rules.at_least(model.heads, 1, "model.heads", "use at least one attention head");
  rules.at_least(model.channels, 1, "model.channels", "set the model width C");
  if (model.heads >= 1 && model.channels >= 1)
    rules.require(model.channels % model.heads == 0, "model.heads",
                  fmt::format("model.channels ({}) must be divisible by model.heads ({}): "
                              "pick a head count that divides the channels",
                              model.channels, model.heads));
}

void check_data(const data_section& data, const run_spec& spec, rule_book& rules) {
  rules.require(!data.train_shards.empty(), "data.train_shards",
                "must not be empty: set a glob of token shards, e.g. \"data/kjv/train_*.bin\"");
  rules.require(data.seq_len >= 1 && data.seq_len <= spec.model.max_seq_len, "data.seq_len",
                fmt::format("must be in [1, model.max_seq_len ({})], got {}: shorten the "
                            "sequences or raise model.max_seq_len",
                            spec.model.max_seq_len, data.seq_len));
  rules.at_least(data.micro_batch, 1, "data.micro_batch", "use at least one sequence per slot");
  rules.at_least(data.slots, 1, "data.slots", "use at least one micro slot per batch");
  if (data.slots >= 1 && spec.parallel.ranks >= 1)
    rules.require(data.slots >= spec.parallel.ranks, "data.slots",
                  fmt::format("must be >= parallel.ranks ({}), got {}: every rank needs at "
                              "least one slot; raise data.slots or lower parallel.ranks",
                              spec.parallel.ranks, data.slots));
}

void check_optimizer(const optimizer_section& opt, rule_book& rules) {
  rules.positive(opt.lr, "optimizer.lr", "set a positive peak learning rate, e.g. 1e-3");
  rules.fraction(opt.min_lr_ratio, true, "optimizer.min_lr_ratio",
                 "the final lr is this fraction of lr (1: constant lr)");
  rules.at_least(opt.warmup_steps, 0, "optimizer.warmup_steps", "use 0 for no warmup");
  rules.fraction(opt.beta1, false, "optimizer.beta1", "the usual value is 0.9");
  rules.fraction(opt.beta2, false, "optimizer.beta2", "the usual value is 0.95 or 0.999");
  rules.positive(opt.eps, "optimizer.eps", "the usual value is 1e-8");
  rules.non_negative(opt.weight_decay, "optimizer.weight_decay", "use 0 for no decay");
  rules.non_negative(opt.grad_clip, "optimizer.grad_clip", "use 0 for no clipping");
}

void check_parallel(const parallel_section& parallel, rule_book& rules) {
  rules.at_least(parallel.ranks, 1, "parallel.ranks", "run at least one rank");
  rules.require(parallel.nodes >= 1 && parallel.nodes <= std::max<int64_t>(parallel.ranks, 1),
                "parallel.nodes",
                fmt::format("must be in [1, parallel.ranks ({})], got {}: every node needs "
                            "at least one rank",
                            parallel.ranks, parallel.nodes));
  rules.at_least(parallel.threads_per_rank, 1, "parallel.threads_per_rank",
                 "use at least one CPU thread per rank");
}

void check_checkpoint(const checkpoint_section& checkpoint, rule_book& rules) {
  rules.at_least(checkpoint.every_steps, 0, "checkpoint.every_steps",
                 "use 0 to never save");
  rules.at_least(checkpoint.keep_last, 1, "checkpoint.keep_last",
                 "keep at least the newest checkpoint");
  rules.at_least(checkpoint.keep_every, 0, "checkpoint.keep_every",
                 "use 0 to keep only the newest ones");
  rules.require(checkpoint.when_busy == "wait" || checkpoint.when_busy == "skip",
                "checkpoint.when_busy",
                fmt::format("unknown policy \"{}\": use \"wait\" or \"skip\"",
                            checkpoint.when_busy));
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
  check_logging(spec.logging, rules);
  return rules.take();
}

}  // namespace lz::config
