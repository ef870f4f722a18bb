// test_spec_bounds.cpp: the upper bounds of the size keys and of their products, which keep
// every derived size far from int64 overflow.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "config/run_spec.hpp"
#include "tests/config/spec_test_support.hpp"

namespace lz::config {
namespace {

using testing::message_for;
using testing::problems_with;

struct broken_bound {
  std::string scenario;           // test name
  std::vector<std::string> sets;  // overrides on the embedded default past one bound
  std::string key_path;           // the key the problem is reported at
  std::string fragment;           // part of its message: the bound and the value
};

std::ostream& operator<<(std::ostream& out, const broken_bound& bound) {
  return out << bound.scenario;
}

class spec_bound : public ::testing::TestWithParam<broken_bound> {};

TEST_P(spec_bound, is_reported_at_its_key_with_the_bound) {
  const broken_bound& bound = GetParam();
  const std::string message = message_for(problems_with(bound.sets), bound.key_path);
  EXPECT_NE(message.find(bound.fragment), std::string::npos)
      << bound.key_path << ": \"" << message << "\" lacks \"" << bound.fragment << "\"";
}

const broken_bound broken_bounds[] = {
  {"billion_channels", {"model.channels=1000000000"}, "model.channels",
   "must be <= 65536, got 1000000000: lower model.channels"},
  {"million_layers", {"model.layers=1000000"}, "model.layers",
   "must be <= 1024, got 1000000: lower model.layers"},
  {"more_heads_than_channels", {"model.heads=256"}, "model.heads",
   "must be <= model.channels (128), got 256"},
  {"huge_max_seq_len", {"model.max_seq_len=1048577"}, "model.max_seq_len",
   "must be <= 1048576, got 1048577"},
  {"padded_vocab_past_uint16", {"model.padded_vocab_size=65664"}, "model.padded_vocab_size",
   "must be <= 65536, got 65664"},
  {"huge_micro_batch", {"data.micro_batch=65537"}, "data.micro_batch",
   "must be <= 65536, got 65537"},
  {"huge_slots", {"data.slots=65537"}, "data.slots", "must be <= 65536, got 65537"},
  {"huge_ranks", {"parallel.ranks=65537", "data.slots=65536"}, "parallel.ranks",
   "must be <= 65536, got 65537"},
  {"huge_threads", {"parallel.threads_per_rank=1025"}, "parallel.threads_per_rank",
   "must be <= 1024, got 1025"},
  {"huge_steps", {"run.steps=1000000001"}, "run.steps", "must be <= 1000000000"},
  {"huge_val_batches", {"run.val_batches=1000001"}, "run.val_batches",
   "must be <= 1000000, got 1000001"},
  {"huge_sample_tokens", {"run.sample_tokens=1000001"}, "run.sample_tokens",
   "must be <= 1000000, got 1000001"},
  {"huge_val_interval", {"run.val_every_steps=1000000001"}, "run.val_every_steps",
   "must be <= 1000000000"},
  {"huge_checkpoint_interval", {"checkpoint.every_steps=1000000001"},
   "checkpoint.every_steps", "must be <= 1000000000"},
  {"huge_keep_last", {"checkpoint.keep_last=1000001"}, "checkpoint.keep_last",
   "must be <= 1000000"},
  {"huge_keep_every", {"checkpoint.keep_every=1000000001"}, "checkpoint.keep_every",
   "must be <= 1000000000"},
  {"huge_warmup", {"optimizer.warmup_steps=1000000001"}, "optimizer.warmup_steps",
   "must be <= 1000000000"},
  {"tokens_per_micro_slot", {"model.max_seq_len=512", "data.seq_len=512",
                             "data.micro_batch=65536"},
   "data.micro_batch",
   "data.micro_batch (65536) x data.seq_len (512) tokens per micro slot = 33554432 must be "
   "<= 16777216"},
  {"attention_scores_per_layer", {"model.max_seq_len=65536", "data.seq_len=65536",
                                  "data.micro_batch=64", "model.heads=128"},
   "data.seq_len", "attention scores per layer = 35184372088832 must be <= 1099511627776"},
  {"tokens_per_step", {"data.slots=65536", "data.micro_batch=1024", "data.seq_len=64"},
   "data.slots", "tokens per optimizer step = 4294967296 must be <= 1073741824"},
  {"attention_scores_past_int64", {"model.max_seq_len=1048576", "data.seq_len=1048576",
                                   "data.micro_batch=65536", "model.channels=65536",
                                   "model.heads=65536"},
   "data.seq_len", "attention scores per layer = more than 2^63"},
};

INSTANTIATE_TEST_SUITE_P(broken, spec_bound, ::testing::ValuesIn(broken_bounds),
                         [](const auto& test) { return test.param.scenario; });

TEST(spec_bounds, the_largest_values_allowed_are_accepted) {
  const std::vector<std::vector<std::string>> cases = {
      {"model.layers=1024", "model.channels=65536", "model.max_seq_len=1048576",
       "model.padded_vocab_size=65536"},
      {"model.heads=128"},  // as many heads as channels
      {"data.micro_batch=65536"},
      {"data.slots=65536", "parallel.ranks=65536", "parallel.nodes=65536"},
      {"parallel.threads_per_rank=1024"},
      {"run.steps=1000000000", "run.val_every_steps=1000000000", "run.val_batches=1000000",
       "run.sample_tokens=1000000", "optimizer.warmup_steps=1000000000",
       "checkpoint.every_steps=1000000000", "checkpoint.keep_last=1000000",
       "checkpoint.keep_every=1000000000"},
      // exactly the product limits: 2^24 tokens per micro slot, 2^40 attention scores
      {"data.micro_batch=65536", "data.seq_len=256"},
      {"model.max_seq_len=65536", "data.seq_len=65536", "data.micro_batch=64",
       "model.heads=4"},
  };
  for (const auto& sets : cases) {
    std::vector<spec_override> overrides;
    for (const std::string& set : sets) overrides.push_back(parse_override(set));
    EXPECT_NO_THROW(embedded_default_spec(overrides)) << ::testing::PrintToString(sets);
  }
}

TEST(spec_bounds, examples_stay_within_the_bounds) {
  for (const char* name : {"tiny", "small", "gpt2_124m"})
    EXPECT_NO_THROW(load_spec_file(std::string(LZ_SOURCE_DIR) + "/config/examples/" + name +
                                   ".toml"))
        << name;
}

}  // namespace
}  // namespace lz::config
