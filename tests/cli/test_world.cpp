// `lazarus run` with several ranks (worker processes over Gloo on loopback): the same spec
// gives bitwise the same weights on 1, 2, 3 and 4 ranks, and a checkpoint saved at one
// world size resumes at another to the same weights.
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "tests/cli/cli_support.hpp"

namespace {

using lz::test::json_field;
using lz::test::read_file;
using lz::test::run_lazarus;

std::string world_args(const std::string& dir, int steps, int ranks, const std::string& extra = "") {
  return "run --no-progress --state-dir " + dir + lz::test::corpus_set_args() +
         " --set run.steps=" + std::to_string(steps) + " --set parallel.ranks=" +
         std::to_string(ranks) +
         " --set data.seq_len=64 --set data.slots=4 --set parallel.threads_per_rank=1"
         " --set run.val_every_steps=0 --set run.val_batches=2 --set run.sample_tokens=0"
         " --set checkpoint.every_steps=5 " + extra;
}

std::string sha_of(const std::string& dir) {
  return json_field(read_file(dir + "/summary.json"), "weights_sha256");
}

std::string trained(const std::string& name, int steps, int ranks, const std::string& extra = "") {
  const std::string dir = lz::test::test_dir(name);
  const auto r = run_lazarus(world_args(dir, steps, ranks, extra), dir);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(json_field(read_file(dir + "/summary.json"), "world_size"), std::to_string(ranks));
  return dir;
}

TEST(world, one_to_four_ranks_train_bitwise_the_same_weights) {
  const std::string one = sha_of(trained("world-1", 10, 1));
  ASSERT_EQ(one.size(), 64u);
  for (int ranks : {2, 3, 4}) {
    const std::string dir = trained("world-" + std::to_string(ranks), 10, ranks);
    EXPECT_EQ(sha_of(dir), one) << ranks << " ranks";
    // one shard per rank, every one verified
    EXPECT_TRUE(std::filesystem::exists(dir + "/checkpoints/step_00000010/shard_0000" +
                                        std::to_string(ranks - 1) + "_of_0000" +
                                        std::to_string(ranks) + ".lzs"));
    const auto verify = run_lazarus("ckpt verify " + dir, dir + "/verify");
    EXPECT_EQ(verify.exit_code, 0) << verify.output;
  }
  EXPECT_EQ(sha_of(trained("world-nodes-3", 10, 3, "--set parallel.nodes=2")), one)
      << "three ranks on two node agents";
}

TEST(world, a_checkpoint_saved_at_two_ranks_resumes_at_three_and_at_one) {
  const std::string reference = sha_of(trained("world-ref-20", 20, 1));
  for (int resumed_at : {3, 1}) {
    const std::string dir = trained("world-resume-" + std::to_string(resumed_at), 10, 2);
    const auto r = run_lazarus(world_args(dir, 20, resumed_at), dir);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("saved by 2 ranks; resharded by range"), std::string::npos)
        << r.output;
    EXPECT_EQ(json_field(read_file(dir + "/summary.json"), "resumed_from_step"), "10");
    EXPECT_EQ(sha_of(dir), reference) << "2 ranks, then " << resumed_at;
  }
}

TEST(world, fast_reduction_is_reproducible_at_a_fixed_world_size) {
  const std::string a = trained("world-fast-a", 6, 2, "--set parallel.reduction=fast");
  const std::string b = trained("world-fast-b", 6, 2, "--set parallel.reduction=fast");
  EXPECT_EQ(json_field(read_file(a + "/summary.json"), "reduction"), "fast");
  EXPECT_EQ(sha_of(a), sha_of(b));
}

}  // namespace

namespace {

TEST(world, one_rank_out_of_disk_fails_that_save_for_all_and_training_goes_on) {
  const std::string dir = lz::test::test_dir("world-enospc");
  const auto r = run_lazarus(world_args(dir, 20, 2), dir, "LAZARUS_FAULT=shard.write@10#1:enospc");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("rank 1:"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("disk is full"), std::string::npos) << r.output;
  const std::string summary = read_file(dir + "/summary.json");
  EXPECT_EQ(json_field(summary, "checkpoints_failed"), "1");
  EXPECT_FALSE(std::filesystem::exists(dir + "/checkpoints/step_00000010"))
      << "rank 0's durable shard of the failed save stayed behind";
  EXPECT_EQ(sha_of(dir), sha_of(trained("world-enospc-ref", 20, 1)));
}

TEST(world, a_run_killed_while_one_rank_writes_resumes_to_the_same_weights) {
  const std::string dir = lz::test::test_dir("world-killed");
  const auto killed = run_lazarus(world_args(dir, 20, 3, "--set fault_tolerance.respawn_retries=0"), dir,
                                   "LAZARUS_FAULT=shard.mid_write@10#2");
  ASSERT_EQ(killed.exit_code, 1) << killed.output;
  EXPECT_NE(killed.output.find("rank 2 on node 'node0'"), std::string::npos) << killed.output;
  EXPECT_NE(killed.output.find("was killed by signal 9 (Killed)"), std::string::npos)
      << killed.output;
  const auto resumed = run_lazarus(world_args(dir, 20, 2), dir);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_EQ(json_field(read_file(dir + "/summary.json"), "resumed_from_step"), "5");
  EXPECT_NE(resumed.output.find("the save of step 10 that never committed"), std::string::npos)
      << resumed.output;
  EXPECT_EQ(sha_of(dir), sha_of(trained("world-killed-ref", 20, 1)));
}

}  // namespace
