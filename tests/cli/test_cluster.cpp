// The distributed runtime end to end: a coordinator, node agents and workers as separate
// processes over loopback, started the way a cluster starts them or by `lazarus run`;
// Ctrl-C, a killed worker and a finished run.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/cli/cli_support.hpp"
#include "tests/cli/process_support.hpp"

namespace {

using lz::test::json_field;
using lz::test::lazarus_process;
using lz::test::read_file;
using lz::test::run_lazarus;
using namespace std::chrono_literals;

std::vector<std::string> spec_sets(int steps, int ranks, int nodes) {
  return lz::test::small_spec_sets(steps, ranks, nodes);
}

std::string joined(const std::vector<std::string>& args) {
  std::string s;
  for (const auto& a : args) s += " '" + a + "'";
  return s;
}

std::string sha_of(const std::string& dir) {
  return json_field(read_file(dir + "/summary.json"), "weights_sha256");
}

// `lazarus run` of the spec in `dir`; the sha of its weights.
std::string run_sha(const std::string& dir, int steps, int ranks, int nodes = 1) {
  const auto r = run_lazarus("run --no-progress --state-dir " + dir +
                                 joined(spec_sets(steps, ranks, nodes)), dir);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return sha_of(dir);
}

std::string tag_of(const std::string& name) { return "LAZARUS_TEST_TAG=" + name; }

TEST(cluster, separate_commands_train_the_same_weights_as_lazarus_run) {
  const std::string dir = lz::test::test_dir("cluster-by-hand");
  std::vector<std::string> args{"--no-progress", "--state-dir", dir + "/state"};
  const auto sets = spec_sets(12, 4, 2);
  args.insert(args.end(), sets.begin(), sets.end());
  auto cluster = lz::test::start_two_nodes(args, 2, {tag_of("by-hand")});
  lazarus_process& coordinator = cluster.coordinator();
  const std::string address = cluster.address();
  ASSERT_FALSE(address.empty()) << coordinator.output();
  EXPECT_EQ(read_file(dir + "/state/coordinator.addr"), address + "\n");
  lazarus_process& a = *cluster.alpha;
  lazarus_process& b = *cluster.beta;
  // a node that comes once every rank has its place is turned away, and the run goes on
  ASSERT_TRUE(coordinator.read_until("' runs rank(s) 2, 3", 60s)) << coordinator.output();
  lazarus_process late({"node", "--join", address, "--name", "gamma"}, {tag_of("by-hand")});
  EXPECT_EQ(late.wait(60s), 1) << late.output();
  EXPECT_NE(late.output().find("the run already has the nodes it needs"), std::string::npos)
      << late.output();
  ASSERT_EQ(coordinator.wait(180s), 0) << coordinator.output();
  EXPECT_EQ(a.wait(30s), 0) << a.output();
  EXPECT_EQ(b.wait(30s), 0) << b.output();
  // ranks go to the nodes in the order they joined, two each
  EXPECT_NE(coordinator.output().find("' runs rank(s) 0, 1"), std::string::npos)
      << coordinator.output();
  EXPECT_NE(coordinator.output().find("' runs rank(s) 2, 3"), std::string::npos)
      << coordinator.output();
  EXPECT_FALSE(std::filesystem::exists(dir + "/state/coordinator.addr"));
  EXPECT_TRUE(lz::test::tagged_processes(tag_of("by-hand")).empty());
  const std::string summary = read_file(dir + "/state/summary.json");
  EXPECT_EQ(json_field(summary, "world_size"), "4");
  EXPECT_EQ(json_field(summary, "checkpoints_committed"), "2") << summary;
  const std::string sha = sha_of(dir + "/state");
  ASSERT_EQ(sha.size(), 64u);
  EXPECT_EQ(sha, run_sha(lz::test::test_dir("cluster-by-hand-ref"), 12, 1))
      << "four ranks on two hand-started nodes against one rank in lazarus run";
  // the metrics say how wide the world was and how slow its slowest rank
  const std::string metrics = read_file(dir + "/state/metrics.jsonl");
  EXPECT_NE(metrics.find("\"world_size\":4"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("\"step_ms_mean\":"), std::string::npos) << metrics;
}

TEST(cluster, lazarus_run_on_two_nodes_matches_one_rank) {
  EXPECT_EQ(run_sha(lz::test::test_dir("cluster-two-nodes"), 8, 3, 2),
            run_sha(lz::test::test_dir("cluster-two-nodes-ref"), 8, 1));
}

TEST(cluster, ctrl_c_saves_the_current_step_ends_every_process_and_resumes) {
  const std::string dir = lz::test::test_dir("cluster-ctrl-c");
  std::vector<std::string> args{"run", "--no-progress", "--state-dir", dir};
  const auto sets = spec_sets(40, 2, 2);
  args.insert(args.end(), sets.begin(), sets.end());
  {
    lazarus_process run(args, {tag_of("ctrl-c")});
    ASSERT_TRUE(run.read_until("step 12/40", 120s)) << run.output();
    ::kill(run.pid(), SIGINT);
    EXPECT_EQ(run.wait(60s), 128 + SIGINT) << run.output();
    EXPECT_NE(run.output().find("stopped by signal 2 after saving this step"), std::string::npos)
        << run.output();
    EXPECT_TRUE(lz::test::tagged_processes(tag_of("ctrl-c")).empty())
        << "a process of the run outlived lazarus run";
  }
  EXPECT_FALSE(std::filesystem::exists(dir + "/summary.json"));
  const auto events = run_lazarus("ckpt events --json " + dir, dir + "/events");
  ASSERT_EQ(events.exit_code, 0) << events.output;
  // the step it stopped at (not a multiple of checkpoint.every_steps) was saved
  const auto ls = run_lazarus("ckpt ls --json " + dir, dir + "/ls");
  bool off_schedule = false;
  for (int s = 13; s < 40; s++) {
    if (s % 5 != 0 && ls.output.find("\"step\":" + std::to_string(s) + ",") != std::string::npos) {
      off_schedule = true;
    }
  }
  EXPECT_TRUE(off_schedule) << ls.output;
  const auto resumed = run_lazarus("run --no-progress --state-dir " + dir + joined(sets), dir);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_EQ(sha_of(dir), run_sha(lz::test::test_dir("cluster-ctrl-c-ref"), 40, 1));
}

TEST(cluster, no_process_outlives_lazarus_run_killed_or_stopped_twice) {
  const auto sets = spec_sets(100000, 2, 2);
  for (const bool sigkill : {true, false}) {
    const std::string name = sigkill ? "sigkill" : "two-ctrl-c";
    const std::string dir = lz::test::test_dir("cluster-" + name);
    std::vector<std::string> args{"run", "--no-progress", "--state-dir", dir};
    args.insert(args.end(), sets.begin(), sets.end());
    lazarus_process run(args, {tag_of(name)});
    ASSERT_TRUE(run.read_until("g0 step 1/", 120s)) << run.output();
    const auto started = lz::test::tagged_processes(tag_of(name));
    EXPECT_GE(started.size(), 5u) << "lazarus run, a coordinator, two node agents, two workers";
    if (sigkill) {
      ::kill(run.pid(), SIGKILL);
      EXPECT_EQ(run.wait(30s), 128 + SIGKILL);
    } else {
      ::kill(run.pid(), SIGINT);
      ASSERT_TRUE(run.read_until("a second signal ends it at once", 30s)) << run.output();
      ::kill(run.pid(), SIGINT);
      EXPECT_EQ(run.wait(30s), 128 + SIGINT) << run.output();
      EXPECT_NE(run.output().find("ending every process of the run"), std::string::npos)
          << run.output();
    }
    EXPECT_TRUE(lz::test::wait_gone(started, 20s).empty()) << name << ": a process of the run lived on";
    EXPECT_TRUE(lz::test::tagged_processes(tag_of(name)).empty()) << name;
    const auto ls = run_lazarus("ckpt ls " + dir, dir + "/ls");
    EXPECT_EQ(ls.exit_code, 0) << name << ": the catalog is readable\n" << ls.output;
  }
}

TEST(cluster, a_killed_worker_with_no_respawn_left_fails_the_run_cleanly_and_the_same_command_resumes) {
  const std::string dir = lz::test::test_dir("cluster-killed-worker");
  const std::string cmd = "run --no-progress --state-dir " + dir + joined(spec_sets(20, 2, 2)) +
                          " --set fault_tolerance.respawn_retries=0";
  const auto failed = run_lazarus(cmd, dir, "LAZARUS_FAULT=train.after_step@7#1 " + tag_of("killed"));
  EXPECT_EQ(failed.exit_code, 1) << failed.output;
  EXPECT_NE(failed.output.find("rank 1 on node 'node"), std::string::npos) << failed.output;
  EXPECT_NE(failed.output.find("killed by signal 9"), std::string::npos) << failed.output;
  EXPECT_NE(failed.output.find("fault_tolerance.respawn_retries = 0"), std::string::npos)
      << failed.output;
  EXPECT_TRUE(lz::test::tagged_processes(tag_of("killed")).empty());
  const auto verify = run_lazarus("ckpt verify " + dir, dir + "/verify");
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
  const auto resumed = run_lazarus(cmd, dir);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_EQ(json_field(read_file(dir + "/summary.json"), "resumed_from_step"), "5");
  EXPECT_EQ(sha_of(dir), run_sha(lz::test::test_dir("cluster-killed-worker-ref"), 20, 1));
}

TEST(cluster, a_finished_run_says_so_and_trains_nothing_until_run_steps_grows) {
  const std::string dir = lz::test::test_dir("cluster-finished");
  const std::string first = run_sha(dir, 6, 2);
  const std::string summary = read_file(dir + "/summary.json");
  const auto again = run_lazarus("run --no-progress --state-dir " + dir + joined(spec_sets(6, 2, 1)), dir);
  EXPECT_EQ(again.exit_code, 0) << again.output;
  EXPECT_NE(again.output.find("trained all 6 steps already"), std::string::npos) << again.output;
  EXPECT_EQ(read_file(dir + "/summary.json"), summary);
  EXPECT_EQ(run_sha(dir, 10, 2), run_sha(lz::test::test_dir("cluster-finished-ref"), 10, 1))
      << "raising run.steps continues the finished run";
  (void)first;
}

}  // namespace
