// test_spec_rules.cpp: every range and cross-field rule, broken one at a time.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "config/run_spec.hpp"
#include "tests/config/spec_test_support.hpp"

namespace lz::config {
namespace {

using testing::message_for;
using testing::problems_with;

struct broken_rule {
  std::string scenario;           // test name
  std::vector<std::string> sets;  // overrides on the embedded default that break the rule
  std::string key_path;           // the key the problem is reported at
  std::string fragment;           // part of its message
};

std::ostream& operator<<(std::ostream& out, const broken_rule& rule) {
  return out << rule.scenario;
}

class spec_rule : public ::testing::TestWithParam<broken_rule> {};

TEST_P(spec_rule, is_reported_at_its_key_with_a_fix) {
  const broken_rule& rule = GetParam();
  const std::string message = message_for(problems_with(rule.sets), rule.key_path);
  EXPECT_NE(message.find(rule.fragment), std::string::npos)
      << rule.key_path << ": \"" << message << "\" lacks \"" << rule.fragment << "\"";
}

const broken_rule broken_rules[] = {
  {"zero_steps", {"run.steps=0"}, "run.steps", "must be >= 1, got 0"},
  {"negative_seed", {"run.seed=-1"}, "run.seed", "must be >= 0"},
  {"negative_val_interval", {"run.val_every_steps=-5"}, "run.val_every_steps", "must be >= 0"},
  {"no_val_batches", {"run.val_batches=0"}, "run.val_batches", "must be >= 1"},
  {"negative_sample_tokens", {"run.sample_tokens=-1"}, "run.sample_tokens", "must be >= 0"},
  {"zero_temperature", {"run.sample_temperature=0"}, "run.sample_temperature", "must be > 0"},
  {"vocab_beyond_uint16", {"model.vocab_size=65537"}, "model.vocab_size", "uint16"},
  {"vocab_of_one", {"model.vocab_size=1"}, "model.vocab_size", "must be in [2, 65536]"},
  {"padded_vocab_below_vocab", {"model.padded_vocab_size=200"}, "model.padded_vocab_size",
   "must be 0 or >= model.vocab_size (256), got 200"},
  {"zero_max_seq_len", {"model.max_seq_len=0"}, "model.max_seq_len", "must be >= 1"},
  {"zero_layers", {"model.layers=0"}, "model.layers", "must be >= 1"},
  {"zero_heads", {"model.heads=0"}, "model.heads", "must be >= 1"},
  {"zero_channels", {"model.channels=0"}, "model.channels", "must be >= 1"},
  {"heads_not_dividing_channels", {"model.heads=3"}, "model.heads",
   "model.channels (128) must be divisible by model.heads (3)"},
  {"seq_len_beyond_max_seq_len", {"data.seq_len=512"}, "data.seq_len",
   "must be in [1, model.max_seq_len (256)], got 512"},
  {"zero_seq_len", {"data.seq_len=0"}, "data.seq_len", "got 0"},
  {"zero_micro_batch", {"data.micro_batch=0"}, "data.micro_batch", "must be >= 1"},
  {"zero_slots", {"data.slots=0"}, "data.slots", "must be >= 1"},
  {"fewer_slots_than_ranks", {"parallel.ranks=4", "parallel.nodes=2"}, "data.slots",
   "every rank needs at least one slot"},
  {"empty_train_shards", {"data.train_shards=\"\""}, "data.train_shards", "must not be empty"},
  {"zero_ranks", {"parallel.ranks=0"}, "parallel.ranks", "must be >= 1"},
  {"more_nodes_than_ranks", {"parallel.nodes=2"}, "parallel.nodes",
   "must be in [1, parallel.ranks (1)], got 2"},
  {"zero_nodes", {"parallel.nodes=0"}, "parallel.nodes", "got 0"},
  {"zero_threads", {"parallel.threads_per_rank=0"}, "parallel.threads_per_rank",
   "must be >= 1"},
  {"zero_lr", {"optimizer.lr=0"}, "optimizer.lr", "must be > 0"},
  {"nan_lr", {"optimizer.lr=nan"}, "optimizer.lr", "must be a finite number"},
  {"infinite_weight_decay", {"optimizer.weight_decay=inf"}, "optimizer.weight_decay",
   "must be a finite number"},
  {"min_lr_ratio_above_one", {"optimizer.min_lr_ratio=1.5"}, "optimizer.min_lr_ratio",
   "must be in [0, 1], got 1.5"},
  {"beta1_of_one", {"optimizer.beta1=1"}, "optimizer.beta1", "must be in [0, 1), got 1"},
  {"negative_beta2", {"optimizer.beta2=-0.1"}, "optimizer.beta2", "must be in [0, 1)"},
  {"zero_eps", {"optimizer.eps=0"}, "optimizer.eps", "must be > 0"},
  {"negative_weight_decay", {"optimizer.weight_decay=-0.1"}, "optimizer.weight_decay",
   "must be >= 0"},
  {"negative_grad_clip", {"optimizer.grad_clip=-1"}, "optimizer.grad_clip", "must be >= 0"},
  {"negative_warmup", {"optimizer.warmup_steps=-1"}, "optimizer.warmup_steps", "must be >= 0"},
  {"negative_checkpoint_interval", {"checkpoint.every_steps=-1"}, "checkpoint.every_steps",
   "must be >= 0"},
  {"keep_no_checkpoints", {"checkpoint.keep_last=0"}, "checkpoint.keep_last", "must be >= 1"},
  {"negative_keep_every", {"checkpoint.keep_every=-2"}, "checkpoint.keep_every",
   "must be >= 0"},
  {"heartbeat_timeout_under_two_intervals",
   {"fault_tolerance.heartbeat_interval_ms=800", "fault_tolerance.heartbeat_timeout_ms=1500"},
   "fault_tolerance.heartbeat_timeout_ms", "at least two heartbeat intervals"},
  {"hang_factor_below_one", {"fault_tolerance.hang_factor=0.5"}, "fault_tolerance.hang_factor",
   "an ordinary slow step counts as a hang"},
  {"min_ranks_above_ranks", {"parallel.ranks=2", "fault_tolerance.min_ranks=3"},
   "fault_tolerance.min_ranks", "must be in [1, parallel.ranks (2)]"},
  {"max_ranks_below_ranks", {"parallel.ranks=2", "fault_tolerance.max_ranks=1"},
   "fault_tolerance.max_ranks", "must be 0 (parallel.ranks) or in [parallel.ranks (2)"},
  {"max_ranks_above_slots", {"data.slots=2", "fault_tolerance.max_ranks=4"},
   "fault_tolerance.max_ranks", "a rank without a slot would hold an optimizer range"},
  {"copies_rarer_than_the_run", {"run.steps=10", "fault_tolerance.replica_every_steps=11"},
   "fault_tolerance.replica_every_steps", "no in-memory copy would ever be made"},
  {"no_nonfinite_step_allowed", {"fault_tolerance.max_nonfinite_steps=0"},
   "fault_tolerance.max_nonfinite_steps", "must be >= 1"},
  {"unknown_log_level", {"logging.level=verbose"}, "logging.level",
   "use one of trace, debug, info, warn, error"},
};

INSTANTIATE_TEST_SUITE_P(broken, spec_rule, ::testing::ValuesIn(broken_rules),
                         [](const auto& test) { return test.param.scenario; });

TEST(spec_rules, values_on_the_boundaries_are_accepted) {
  std::vector<spec_override> overrides;
  for (const char* set : {"model.vocab_size=65536", "model.padded_vocab_size=65536",
                          "data.seq_len=256", "parallel.ranks=2", "parallel.nodes=2",
                          "optimizer.min_lr_ratio=1", "optimizer.beta1=0",
                          "optimizer.weight_decay=0", "optimizer.grad_clip=0",
                          "checkpoint.keep_last=1", "run.val_every_steps=0",
                          "run.sample_tokens=0", "logging.level=trace"})
    overrides.push_back(parse_override(set));
  EXPECT_NO_THROW(embedded_default_spec(overrides));
}

TEST(spec_rules, a_broken_rule_names_the_key_in_what) {
  try {
    parse_spec("[run]\nsteps = 0\n", "<embedded default>");
    FAIL() << "expected spec_invalid";
  } catch (const spec_invalid& e) {
    EXPECT_NE(std::string(e.what()).find("<embedded default>: run.steps: must be >= 1, got 0"),
              std::string::npos) << e.what();
  }
}

TEST(spec_rules, a_broken_rule_set_by_an_override_names_set_as_its_source) {
  try {
    embedded_default_spec({parse_override("run.steps=0")});
    FAIL() << "expected spec_invalid";
  } catch (const spec_invalid& e) {
    EXPECT_NE(std::string(e.what()).find("--set: run.steps: must be >= 1, got 0"),
              std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace lz::config
