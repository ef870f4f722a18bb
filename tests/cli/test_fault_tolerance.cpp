// Failures that a run survives on its own and that leave its result unchanged.
#include <string>

#include <gtest/gtest.h>

#include "tests/cli/cli_support.hpp"

namespace {

using lz::test::json_field;
using lz::test::read_file;
using lz::test::run_lazarus;

std::string args(const std::string& dir, int ranks, const std::string& extra = "") {
  return "run --no-progress --state-dir " + dir + lz::test::corpus_set_args() +
         " --set run.steps=10 --set parallel.ranks=" + std::to_string(ranks) +
         " --set data.seq_len=64 --set data.slots=4 --set parallel.threads_per_rank=1"
         " --set run.val_every_steps=0 --set run.val_batches=2 --set run.sample_tokens=0"
         " --set checkpoint.every_steps=5 " + extra;
}

std::string sha_of(const std::string& dir) {
  return json_field(read_file(dir + "/summary.json"), "weights_sha256");
}

// The weights of the same spec trained without a fault on one rank (trained once).
const std::string& reference_sha() {
  static const std::string sha = [] {
    const std::string dir = lz::test::test_dir("ft-ref");
    const auto r = run_lazarus(args(dir, 1), dir);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return sha_of(dir);
  }();
  return sha;
}

TEST(fault_tolerance, a_nan_loss_on_one_rank_is_discarded_everywhere_and_the_step_tried_again) {
  // step 6 also fills the snapshot of the save of step 5: the retry must fill it again
  const std::string dir = lz::test::test_dir("ft-nan");
  const auto r = run_lazarus(args(dir, 2), dir, "LAZARUS_FAULT=train.loss@6#1:nan");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("non-finite loss at step 5"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("tried again (1 of 3)"), std::string::npos) << r.output;
  EXPECT_EQ(sha_of(dir), reference_sha()) << "the discarded try left no trace";
  const auto verify = run_lazarus("ckpt verify " + dir, dir + "/verify");
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
  EXPECT_EQ(json_field(read_file(dir + "/summary.json"), "checkpoints_committed"), "2");
}

TEST(fault_tolerance, non_finite_steps_in_a_row_stop_the_run_with_the_evidence) {
  const std::string dir = lz::test::test_dir("ft-nan-stop");
  const auto r = run_lazarus(args(dir, 2, "--set fault_tolerance.max_nonfinite_steps=1"), dir,
                             "LAZARUS_FAULT=train.loss@3#0:nan");
  ASSERT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("step 3 was non-finite 1 time(s) in a row (non-finite loss at step 2"),
            std::string::npos) << r.output;
  EXPECT_NE(r.output.find("lower optimizer.lr"), std::string::npos) << r.output;
}


TEST(fault_tolerance, a_worker_killed_mid_run_is_replaced_and_the_run_ends_with_the_reference_weights) {
  const std::string dir = lz::test::test_dir("ft-kill");
  const auto r = run_lazarus(args(dir, 2), dir, "LAZARUS_FAULT=train.after_step@7#1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("rank 1 on node 'node0'"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("recovered in"), std::string::npos) << r.output;
  const std::string summary = read_file(dir + "/summary.json");
  EXPECT_EQ(json_field(summary, "faults"), "1") << summary;
  EXPECT_EQ(json_field(summary, "recoveries"), "1") << summary;
  // the kill follows rank 1's report of step 7, which may or may not leave the process
  // first: 6 or 7 finished steps, back to checkpoint 5
  const std::string lost = json_field(summary, "steps_lost");
  EXPECT_TRUE(lost == "1" || lost == "2") << summary;
  EXPECT_EQ(json_field(summary, "generations"), "2") << summary;
  EXPECT_EQ(sha_of(dir), reference_sha());
  const auto verify = run_lazarus("ckpt verify " + dir, dir + "/verify");
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
}

}  // namespace
