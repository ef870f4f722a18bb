// test_spec_resume.cpp: which keys may change when a run resumes, scenario by scenario.
#include <algorithm>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "config/spec_resume.hpp"
#include "config/spec_schema.hpp"

namespace lz::config {
namespace {

std::vector<std::string> paths_of(const std::vector<key_change>& changes) {
  std::vector<std::string> paths;
  for (const key_change& change : changes) paths.push_back(change.key_path);
  return paths;
}

TEST(compare_for_resume, nothing_changed_gives_three_empty_lists) {
  const resume_diff diff = compare_for_resume(run_spec{}, run_spec{});
  EXPECT_TRUE(diff.refused.empty());
  EXPECT_TRUE(diff.allowed.empty());
  EXPECT_TRUE(diff.by_content.empty());
  EXPECT_TRUE(diff.resumable());
  EXPECT_EQ(describe_refusal(diff), "");
}

TEST(compare_for_resume, a_new_learning_rate_is_allowed_with_both_values) {
  run_spec now;
  now.optimizer.lr = 1e-4;
  const resume_diff diff = compare_for_resume(run_spec{}, now);
  EXPECT_TRUE(diff.resumable());
  ASSERT_EQ(diff.allowed.size(), 1u);
  EXPECT_EQ(diff.allowed[0].key_path, "optimizer.lr");
  EXPECT_EQ(diff.allowed[0].before, "0.003");
  EXPECT_EQ(diff.allowed[0].after, "0.0001");
  EXPECT_EQ(diff.allowed[0].rule, resume_rule::may_change);
}

TEST(compare_for_resume, longer_sequences_and_more_slots_are_refused_and_named) {
  run_spec now;
  now.data.seq_len = 256;
  now.data.slots = 4;
  now.run.steps = 600;  // allowed alongside
  const resume_diff diff = compare_for_resume(run_spec{}, now);
  EXPECT_FALSE(diff.resumable());
  EXPECT_EQ(paths_of(diff.refused), (std::vector<std::string>{"data.seq_len", "data.slots"}));
  EXPECT_EQ(paths_of(diff.allowed), std::vector<std::string>{"run.steps"});

  const std::string message = describe_refusal(diff);
  for (const char* fragment :
       {"cannot resume: 2 keys", "data.seq_len  recorded 128, now 256",
        "data.slots    recorded 2, now 4", "--set data.seq_len=128 --set data.slots=2",
        "use the recorded values", "or start a new run with another --state-dir"})
    EXPECT_NE(message.find(fragment), std::string::npos) << "lacks \"" << fragment << "\":\n"
                                                         << message;
  EXPECT_EQ(message.find("run.steps"), std::string::npos) << message;
  EXPECT_GE(std::count(message.begin(), message.end(), '\n'), 3) << message;
}

TEST(compare_for_resume, a_new_train_shards_glob_is_left_to_the_file_comparison) {
  run_spec now;
  now.data.train_shards = "/mnt/moved/kjv/train_*.bin";
  const resume_diff diff = compare_for_resume(run_spec{}, now);
  EXPECT_TRUE(diff.resumable());
  EXPECT_TRUE(diff.allowed.empty());
  ASSERT_EQ(diff.by_content.size(), 1u);
  EXPECT_EQ(diff.by_content[0].key_path, "data.train_shards");
  EXPECT_EQ(diff.by_content[0].before, "\"data/kjv/train_*.bin\"");
  EXPECT_EQ(diff.by_content[0].after, "\"/mnt/moved/kjv/train_*.bin\"");
  EXPECT_EQ(diff.by_content[0].rule, resume_rule::by_content);
}

TEST(compare_for_resume, a_new_model_shape_or_seed_is_refused_but_init_from_is_not) {
  run_spec now;
  now.model.layers = 6;
  now.run.seed = 7;
  now.model.init_from = "gpt2_124M.bin";
  const resume_diff diff = compare_for_resume(run_spec{}, now);
  EXPECT_EQ(paths_of(diff.refused), (std::vector<std::string>{"run.seed", "model.layers"}));
  EXPECT_EQ(paths_of(diff.allowed), std::vector<std::string>{"model.init_from"});
  const std::string message = describe_refusal(diff);
  EXPECT_NE(message.find("it shapes the saved weights and moments"), std::string::npos)
      << message;
}

TEST(compare_for_resume, places_and_policies_may_change) {
  run_spec now;
  now.run.name = "renamed";
  now.data.val_shards = "elsewhere/val_*.bin";
  now.parallel.ranks = 2;
  now.parallel.threads_per_rank = 8;
  now.checkpoint.dir = "/fast/ckpt";
  now.checkpoint.every_steps = 10;
  now.logging.level = "debug";
  const resume_diff diff = compare_for_resume(run_spec{}, now);
  EXPECT_TRUE(diff.refused.empty());
  EXPECT_EQ(diff.allowed.size(), 7u);
}

TEST(resume_rules, the_schema_assigns_the_rules_as_documented) {
  EXPECT_EQ(keys_with_resume_rule(resume_rule::must_match),
            (std::vector<std::string>{"run.seed", "model.vocab_size", "model.padded_vocab_size",
                                      "model.max_seq_len", "model.layers", "model.heads",
                                      "model.channels", "data.seq_len", "data.micro_batch",
                                      "data.slots"}));
  EXPECT_EQ(keys_with_resume_rule(resume_rule::by_content),
            std::vector<std::string>{"data.train_shards"});
  const size_t may_change = keys_with_resume_rule(resume_rule::may_change).size();
  EXPECT_EQ(may_change + 11, spec_keys().size());
}

TEST(resume_rules, every_key_gives_a_reason) {
  for (const spec_key& key : spec_keys())
    EXPECT_FALSE(key.resume_reason.empty()) << key.path();
  EXPECT_EQ(describe(resume_rule::must_match), "must match");
}

}  // namespace
}  // namespace lz::config
