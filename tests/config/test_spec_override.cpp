// test_spec_override.cpp: --set section.key=value overrides, parsed and applied.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "config/run_spec.hpp"
#include "tests/config/spec_test_support.hpp"

namespace lz::config {
namespace {

using testing::message_for;
using testing::problems_of;
using testing::problems_with;

run_spec default_with(const std::vector<std::string>& sets) {
  std::vector<spec_override> overrides;
  for (const std::string& set : sets) overrides.push_back(parse_override(set));
  return embedded_default_spec(overrides);
}

spec_problem override_problem(std::string_view text) {
  try {
    parse_override(text);
  } catch (const spec_invalid& e) {
    EXPECT_EQ(e.source(), "--set");
    if (e.problems().size() == 1) return e.problems()[0];
  }
  ADD_FAILURE() << "expected one problem for '" << text << "'";
  return {};
}

TEST(parse_override, splits_key_path_and_value_at_the_first_equals) {
  const spec_override change = parse_override("data.train_shards=a=b");
  EXPECT_EQ(change.key_path, "data.train_shards");
  EXPECT_EQ(change.value, "a=b");
}

TEST(parse_override, trims_spaces_around_key_and_value) {
  const spec_override change = parse_override("  model.layers =  6 ");
  EXPECT_EQ(change.key_path, "model.layers");
  EXPECT_EQ(change.value, "6");
}

TEST(parse_override, text_without_equals_is_rejected) {
  const spec_problem problem = override_problem("model.layers");
  EXPECT_NE(problem.message.find("has no '='"), std::string::npos) << problem.message;
}

TEST(parse_override, a_key_without_section_is_rejected) {
  for (const char* text : {"layers=6", ".layers=6", "model.=6", "=6"}) {
    const spec_problem problem = override_problem(text);
    EXPECT_NE(problem.message.find("section.key=value"), std::string::npos) << text;
  }
}

TEST(apply_override, numbers_replace_the_default) {
  const run_spec spec = default_with({"model.layers=6", "optimizer.lr=3e-4",
                                      "optimizer.grad_clip=2", "run.seed=42"});
  EXPECT_EQ(spec.model.layers, 6);
  EXPECT_EQ(spec.optimizer.lr, 3e-4);
  EXPECT_EQ(spec.optimizer.grad_clip, 2.0);
  EXPECT_EQ(spec.run.seed, 42u);
}

TEST(apply_override, booleans_replace_the_default) {
  EXPECT_FALSE(default_with({"checkpoint.async=false"}).checkpoint.async);
}

TEST(apply_override, strings_may_be_bare_or_quoted) {
  const run_spec spec = default_with({"data.train_shards=data/x/*.bin",
                                      "run.name=\"my run\"", "checkpoint.dir=123",
                                      "model.init_from=true"});
  EXPECT_EQ(spec.data.train_shards, "data/x/*.bin");
  EXPECT_EQ(spec.run.name, "my run");
  EXPECT_EQ(spec.checkpoint.dir, "123");
  EXPECT_EQ(spec.model.init_from, "true");
}

TEST(apply_override, overrides_win_over_the_file_and_apply_in_order) {
  const run_spec spec = parse_spec("[model]\nlayers = 2\n", "test.toml",
                                   {{"model.layers", "8"}, {"model.layers", "10"}});
  EXPECT_EQ(spec.model.layers, 10);
}

TEST(apply_override, validation_sees_the_overridden_values) {
  // The file alone is invalid (4 ranks, 2 slots); the override fixes it.
  const run_spec spec =
      parse_spec("[parallel]\nranks = 4\n", "test.toml", {{"data.slots", "4"}});
  EXPECT_EQ(spec.data.slots, 4);
}

TEST(apply_override, an_unknown_key_is_reported_from_set_with_a_suggestion) {
  const auto problems = problems_with({"model.layer=6"});
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].source, "--set");
  EXPECT_EQ(problems[0].key_path, "model.layer");
  EXPECT_EQ(problems[0].message, "unknown key; did you mean 'model.layers'?");
}

TEST(apply_override, a_wrong_type_is_reported_from_set) {
  try {
    default_with({"model.layers=four"});
    FAIL() << "expected spec_invalid";
  } catch (const spec_invalid& e) {
    EXPECT_NE(std::string(e.what()).find(
                  "--set: model.layers: expected an integer, got string \"four\""),
              std::string::npos) << e.what();
  }
}

TEST(apply_override, a_key_of_a_reserved_section_is_not_supported_yet) {
  const std::string message = message_for(problems_with({"chaos.kill_rank=1"}),
                                          "chaos.kill_rank");
  EXPECT_NE(message.find("not supported yet"), std::string::npos) << message;
}

TEST(apply_override, problems_of_file_and_overrides_come_together) {
  const auto problems = problems_of("[model]\nlayres = 3\n", {{"run.stesp", "3"}});
  ASSERT_EQ(problems.size(), 2u);
  EXPECT_EQ(problems[0].key_path, "model.layres");
  EXPECT_EQ(problems[0].source, "");
  EXPECT_EQ(problems[1].key_path, "run.stesp");
  EXPECT_EQ(problems[1].source, "--set");
}

TEST(apply_override, a_broken_rule_at_an_overridden_key_is_reported_from_set) {
  try {
    default_with({"model.layers=-1"});
    FAIL() << "expected spec_invalid";
  } catch (const spec_invalid& e) {
    ASSERT_EQ(e.problems().size(), 1u);
    EXPECT_EQ(e.problems()[0].source, "--set");
    EXPECT_NE(std::string(e.what()).find("--set: model.layers: must be >= 1, got -1"),
              std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find("<embedded default>: model.layers"),
              std::string::npos) << e.what();
  }
}

TEST(apply_override, a_broken_rule_at_a_key_of_the_file_keeps_the_file_as_source) {
  // The override is valid itself; the rule it breaks is reported at data.seq_len, which
  // the file set.
  const auto problems = problems_of("[data]\nseq_len = 128\n", {{"model.max_seq_len", "64"}});
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].key_path, "data.seq_len");
  EXPECT_EQ(problems[0].source, "");
}

TEST(apply_override, a_file_value_and_an_override_each_keep_their_source) {
  const auto problems = problems_of("[run]\nsteps = 0\n", {{"data.slots", "0"}});
  ASSERT_EQ(problems.size(), 2u);
  EXPECT_EQ(problems[0].key_path, "run.steps");
  EXPECT_EQ(problems[0].source, "");
  EXPECT_EQ(problems[1].key_path, "data.slots");
  EXPECT_EQ(problems[1].source, "--set");
}

}  // namespace
}  // namespace lz::config
