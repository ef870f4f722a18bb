// Checkpoints end to end: a run killed at any point of the save protocol or of training
// resumes to exactly the weights of a run never interrupted; a full disk costs one save
// only; a corrupt shard is detected and skipped for the previous checkpoint.
#include <algorithm>
#include <filesystem>
#include <sstream>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/cli/cli_support.hpp"

namespace {

using lz::test::json_field;
using lz::test::read_file;
using lz::test::run_lazarus;

constexpr int k_killed = 128 + 9;  // exit status of a process killed by SIGKILL
constexpr int k_failed = 1;        // a run that lost a worker stops with this status

std::string run_args(const std::string& dir, int steps = 20) {
  return "run --no-progress --state-dir " + dir + lz::test::corpus_set_args() +
         " --set run.steps=" + std::to_string(steps) +
         " --set data.seq_len=64 --set run.val_every_steps=10 --set run.sample_tokens=0"
         " --set checkpoint.every_steps=5 --set checkpoint.keep_last=3"
         // a killed process stops the run (no respawn): what these tests check is what a
         // crash leaves on disk and how the next start resumes from it
         " --set fault_tolerance.respawn_retries=0";
}

std::string sha_of(const std::string& dir) {
  return json_field(read_file(dir + "/summary.json"), "weights_sha256");
}

// The weights of an uninterrupted run of `steps` steps, computed once per step count.
const std::string& reference_sha(int steps) {
  static std::map<int, std::string> cache;
  auto it = cache.find(steps);
  if (it == cache.end()) {
    const std::string dir = lz::test::test_dir("resume-reference-" + std::to_string(steps));
    const auto r = run_lazarus(run_args(dir, steps), dir);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    it = cache.emplace(steps, sha_of(dir)).first;
    EXPECT_EQ(it->second.size(), 64u);
  }
  return it->second;
}

struct kill_case {
  const char* fault;          // LAZARUS_FAULT
  const char* name;
  const char* resumed_from;   // where the second run must restart ("5|10": either)
};

class killed_run : public ::testing::TestWithParam<kill_case> {};

TEST_P(killed_run, resumes_to_the_weights_of_an_uninterrupted_run) {
  const kill_case& c = GetParam();
  const std::string dir = lz::test::test_dir(std::string("resume-") + c.name);
  const auto killed = run_lazarus(run_args(dir), dir, std::string("LAZARUS_FAULT=") + c.fault);
  // a catalog point kills the coordinator (lazarus run reports its signal); any other point
  // kills a worker, which stops the run with an error that names the rank and the signal
  const bool in_coordinator = std::string(c.fault).rfind("catalog.", 0) == 0;
  ASSERT_EQ(killed.exit_code, in_coordinator ? k_killed : k_failed)
      << "the fault did not fire:\n" << killed.output;
  if (!in_coordinator) {
    EXPECT_NE(killed.output.find("was killed by signal 9"), std::string::npos) << killed.output;
  }
  EXPECT_FALSE(std::filesystem::exists(dir + "/summary.json"));
  // the killed attempt's log lines were flushed as they were written
  const std::string killed_log = read_file(dir + "/run.log");
  EXPECT_NE(killed_log.find("==== lazarus run starts"), std::string::npos) << killed_log;
  EXPECT_NE(killed_log.find("model: "), std::string::npos) << killed_log;

  const auto resumed = run_lazarus(run_args(dir), dir);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_EQ(read_file(dir + "/run.log").rfind(killed_log, 0), 0u)
      << "the resumed run did not append to run.log";
  const std::string summary = read_file(dir + "/summary.json");
  const std::string from = json_field(summary, "resumed_from_step");
  std::vector<std::string> allowed;
  std::stringstream options(c.resumed_from);
  for (std::string one; std::getline(options, one, '|');) allowed.push_back(one);
  EXPECT_NE(std::find(allowed.begin(), allowed.end(), from), allowed.end())
      << "resumed from step " << from << ", expected " << c.resumed_from << "\n"
      << resumed.output;
  EXPECT_EQ(sha_of(dir), reference_sha(20));
  // metrics hold every step exactly once, whatever was replayed
  std::ifstream metrics(dir + "/metrics.jsonl");
  std::string line;
  int64_t expect = 1;
  while (std::getline(metrics, line)) {
    EXPECT_EQ(json_field(line, "step"), std::to_string(expect)) << line;
    expect++;
  }
  EXPECT_EQ(expect, 21);
  // nothing uncommitted or half-deleted is left on disk
  const auto ls = run_lazarus("ckpt ls --json " + dir, dir + "/ls");
  ASSERT_EQ(ls.exit_code, 0) << ls.output;
  size_t listed = 0;
  for (size_t at = ls.output.find("\"step\":"); at != std::string::npos;
       at = ls.output.find("\"step\":", at + 1)) {
    listed++;
  }
  size_t dirs = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir + "/checkpoints")) {
    EXPECT_TRUE(e.path().filename().string().starts_with("step_")) << e.path();
    EXPECT_EQ(e.path().extension(), "") << e.path();
    dirs++;
  }
  EXPECT_EQ(listed, dirs) << ls.output;
  EXPECT_LE(dirs, 3u);
}

INSTANTIATE_TEST_SUITE_P(
    fault_points, killed_run,
    ::testing::Values(kill_case{"train.after_step@13", "after_step_13", "5|10"},
                      kill_case{"checkpoint.after_snapshot@10", "after_snapshot", "5"},
                      kill_case{"shard.mid_write@10", "mid_shard_write", "5"},
                      kill_case{"shard.before_rename@10", "before_rename", "5"},
                      kill_case{"shard.after_rename@10", "after_rename", "5"},
                      kill_case{"catalog.before_commit@10", "before_commit", "5"},
                      kill_case{"catalog.after_commit@10", "after_commit", "10"},
                      kill_case{"catalog.after_begin_delete@5", "mid_retention", "20"}),
    [](const auto& test_info) { return std::string(test_info.param.name); });

TEST(checkpoint_run, full_disk_costs_one_save_and_training_goes_on) {
  const std::string dir = lz::test::test_dir("resume-enospc");
  const auto r = run_lazarus(run_args(dir), dir, "LAZARUS_FAULT=shard.write@10:enospc");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("disk is full"), std::string::npos) << r.output;
  EXPECT_EQ(sha_of(dir), reference_sha(20));
  const std::string summary = read_file(dir + "/summary.json");
  EXPECT_EQ(json_field(summary, "checkpoints_failed"), "1");
  EXPECT_EQ(json_field(summary, "checkpoints_committed"), "3");  // 5, 15, 20
  const auto ls = run_lazarus("ckpt ls --json " + dir, dir + "/ls");
  EXPECT_EQ(ls.output.find("\"step\":10,"), std::string::npos) << ls.output;
  EXPECT_NE(ls.output.find("\"step\":20,"), std::string::npos) << ls.output;
  EXPECT_FALSE(std::filesystem::exists(dir + "/checkpoints/step_00000010"));
}

// Damages the shard of step 20 of a finished run in one of several ways.
enum class damage { flip_byte, truncate, remove };

void damage_shard(const std::string& shard, damage how) {
  ASSERT_TRUE(std::filesystem::exists(shard));
  const auto size = static_cast<std::streamoff>(std::filesystem::file_size(shard));
  if (how == damage::remove) {
    std::filesystem::remove(shard);
  } else if (how == damage::truncate) {
    std::filesystem::resize_file(shard, static_cast<uintmax_t>(size / 2));
  } else {
    std::fstream f(shard, std::ios::in | std::ios::out | std::ios::binary);
    char c = 0;
    f.seekg(size - 100);  // inside the last tensor (adam_v)
    f.read(&c, 1);
    c = static_cast<char>(c ^ 0x5a);
    f.seekp(size - 100);
    f.write(&c, 1);
  }
}

class damaged_checkpoint : public ::testing::TestWithParam<damage> {};

TEST_P(damaged_checkpoint, loader_falls_back_to_the_previous_checkpoint_and_says_why) {
  const std::string dir = lz::test::test_dir("resume-damaged-" + std::to_string(static_cast<int>(GetParam())));
  ASSERT_EQ(run_lazarus(run_args(dir), dir).exit_code, 0);
  damage_shard(dir + "/checkpoints/step_00000020/shard_00000_of_00001.lzs", GetParam());
  // continuing to 25 steps must restart from 15 and end as an uninterrupted 25-step run
  const auto resumed = run_lazarus(run_args(dir, 25), dir);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  // proof of damage marks the checkpoint corrupt; a missing file is only unreadable
  const std::string said =
      GetParam() == damage::remove ? "step 20 cannot be read" : "step 20 is corrupt";
  EXPECT_NE(resumed.output.find(said), std::string::npos) << resumed.output;
  const auto ls = run_lazarus("ckpt ls --json " + dir, dir + "/ls");
  EXPECT_EQ(ls.output.find("\"status\":\"corrupt\""), std::string::npos) << ls.output
      << "a corrupt step 20 is saved again when training passes it";
  EXPECT_NE(resumed.output.find("shard_00000_of_00001.lzs"), std::string::npos) << resumed.output;
  if (GetParam() == damage::flip_byte) {
    EXPECT_NE(resumed.output.find("adam_v"), std::string::npos) << resumed.output;
  }
  EXPECT_EQ(json_field(read_file(dir + "/summary.json"), "resumed_from_step"), "15");
  EXPECT_EQ(sha_of(dir), reference_sha(25));
}

INSTANTIATE_TEST_SUITE_P(kinds, damaged_checkpoint,
                         ::testing::Values(damage::flip_byte, damage::truncate, damage::remove));

TEST(checkpoint_run, verify_names_the_corrupt_shard_and_tensor) {
  const std::string dir = lz::test::test_dir("resume-verify");
  ASSERT_EQ(run_lazarus(run_args(dir), dir).exit_code, 0);
  const auto clean = run_lazarus("ckpt verify " + dir, dir + "/verify-clean");
  EXPECT_EQ(clean.exit_code, 0) << clean.output;
  damage_shard(dir + "/checkpoints/step_00000020/shard_00000_of_00001.lzs", damage::flip_byte);
  const auto verify = run_lazarus("ckpt verify " + dir, dir + "/verify");
  EXPECT_NE(verify.exit_code, 0) << verify.output;
  EXPECT_NE(verify.output.find("shard_00000_of_00001.lzs"), std::string::npos) << verify.output;
  EXPECT_NE(verify.output.find("adam_v"), std::string::npos) << verify.output;
  EXPECT_NE(verify.output.find("step 15: ok"), std::string::npos) << verify.output;
  const auto ls = run_lazarus("ckpt ls --json " + dir, dir + "/ls");
  EXPECT_NE(ls.output.find("\"step\":20,"), std::string::npos);
  EXPECT_NE(ls.output.find("\"status\":\"corrupt\""), std::string::npos) << ls.output;
}

TEST(checkpoint_run, ls_and_inspect_describe_the_checkpoints) {
  const std::string dir = lz::test::test_dir("resume-inspect");
  ASSERT_EQ(run_lazarus(run_args(dir), dir).exit_code, 0);
  const auto ls = run_lazarus("ckpt ls " + dir, dir + "/ls");
  ASSERT_EQ(ls.exit_code, 0) << ls.output;
  for (const char* step : {"10 ", "15 ", "20 "}) {
    EXPECT_NE(ls.output.find(std::string("\n") + step), std::string::npos) << ls.output;
  }
  EXPECT_EQ(ls.output.find("\n5 "), std::string::npos) << "retention keeps the last 3";
  const auto inspect = run_lazarus("ckpt inspect --json --step 15 " + dir, dir + "/inspect");
  ASSERT_EQ(inspect.exit_code, 0) << inspect.output;
  EXPECT_EQ(json_field(inspect.output, "step"), "15");
  EXPECT_EQ(json_field(inspect.output, "world_size"), "1");
  for (const char* tensor : {"\"params\"", "\"adam_m\"", "\"adam_v\""}) {
    EXPECT_NE(inspect.output.find(tensor), std::string::npos) << inspect.output;
  }
  const auto missing = run_lazarus("ckpt inspect --step 3 " + dir, dir + "/missing");
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.output.find("no checkpoint at step 3"), std::string::npos) << missing.output;
  // export from a checkpoint: the weights of step 20 are the final weights
  const auto exp = run_lazarus("ckpt export --format llmc --step 20 " + dir + " " + dir + "/w.bin",
                               dir + "/export");
  ASSERT_EQ(exp.exit_code, 0) << exp.output;
  EXPECT_EQ(read_file(dir + "/w.bin"), read_file(dir + "/final_model.bin"));
}

}  // namespace

namespace {

TEST(checkpoint_run, runs_sharing_a_checkpoint_dir_keep_to_their_own_files) {
  const std::string shared = lz::test::test_dir("resume-shared-ckpt");
  const std::string a = shared + "/state-a", b = shared + "/state-b";
  const std::string dir_arg = " --set checkpoint.dir=" + shared + "/ckpt";
  ASSERT_EQ(run_lazarus(run_args(a, 10) + dir_arg, a).exit_code, 0);
  ASSERT_EQ(run_lazarus(run_args(b, 10) + dir_arg, b).exit_code, 0);
  const std::string id_a = json_field(read_file(a + "/summary.json"), "run_id");
  const std::string id_b = json_field(read_file(b + "/summary.json"), "run_id");
  ASSERT_NE(id_a, id_b);
  for (const std::string& id : {id_a, id_b}) {
    EXPECT_TRUE(std::filesystem::exists(shared + "/ckpt/" + id + "/step_00000010/shard_00000_of_00001.lzs"))
        << id;
  }
  const auto ls = run_lazarus("ckpt verify --checkpoint-dir " + shared + "/ckpt " + a, a + "/ls");
  EXPECT_EQ(ls.exit_code, 0) << ls.output;
  EXPECT_NE(ls.output.find("step 10: ok"), std::string::npos) << ls.output;
  // run a goes on to 15 steps from its own step 10
  const auto resumed = run_lazarus(run_args(a, 15) + dir_arg, a);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_EQ(json_field(read_file(a + "/summary.json"), "resumed_from_step"), "10");
  EXPECT_EQ(sha_of(a), reference_sha(15));
}

}  // namespace

namespace {

TEST(checkpoint_run, sigterm_saves_the_current_step_and_stops_for_a_resume) {
  const std::string dir = lz::test::test_dir("resume-sigterm");
  const auto stopped = run_lazarus(run_args(dir), dir, "LAZARUS_FAULT=train.after_step@7:term");
  ASSERT_EQ(stopped.exit_code, 128 + 15) << stopped.output;
  EXPECT_NE(stopped.output.find("stopped by signal 15"), std::string::npos) << stopped.output;
  EXPECT_FALSE(std::filesystem::exists(dir + "/summary.json"));
  const auto ls = run_lazarus("ckpt ls --json " + dir, dir + "/ls");
  EXPECT_NE(ls.output.find("\"step\":7,"), std::string::npos) << ls.output;

  const auto resumed = run_lazarus(run_args(dir), dir);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_EQ(json_field(read_file(dir + "/summary.json"), "resumed_from_step"), "7");
  EXPECT_EQ(sha_of(dir), reference_sha(20));
}

}  // namespace
