// Failures that a run survives on its own and that leave its result unchanged: the same
// weights as an uninterrupted run, and every (step, slot) window trained exactly once in the
// final history (the record of trained windows, engine/window_record.hpp).
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
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

constexpr int k_slots = 4;  // data.slots of small_spec_sets

// The spec of these tests as --set arguments: `steps` steps of k_slots slots, a checkpoint
// every 5 steps, a replacement awaited for 1 s.
std::vector<std::string> spec_sets(int steps, int ranks, int nodes = 1) {
  std::vector<std::string> out = lz::test::small_spec_sets(steps, ranks, nodes);
  out.insert(out.end(), {"--set", "fault_tolerance.replace_timeout_ms=1000"});
  return out;
}

std::string args(const std::string& dir, int ranks, const std::string& extra = "", int steps = 10) {
  std::string out = "run --no-progress --state-dir " + dir;
  for (const auto& a : spec_sets(steps, ranks)) out += " " + a;
  return out + " " + extra;
}

std::vector<std::string> concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// The pid that the coordinator's log gives for node agent `name`.
pid_t node_pid(const std::string& output, const std::string& name) {
  const std::string key = "node '" + name + "' (127.0.0.1, pid ";
  const auto at = output.find(key);
  return at == std::string::npos ? -1 : static_cast<pid_t>(std::stol(output.substr(at + key.size())));
}

std::string sha_of(const std::string& dir) {
  return json_field(read_file(dir + "/summary.json"), "weights_sha256");
}

// step -> slot -> hash of the windows in the final history of the run in `dir`: for each
// step, the windows of the last generation that trained it. A window of that generation
// trained twice, or a missing slot, fails the test.
using window_history = std::map<int64_t, std::map<int64_t, std::string>>;
window_history final_windows(const std::string& dir) {
  std::map<int64_t, std::map<int64_t, std::multimap<int64_t, std::string>>> seen;  // step, g
  for (const auto& e : std::filesystem::directory_iterator(dir + "/windows")) {
    std::ifstream in(e.path());
    int64_t g = 0, step = 0, slot = 0;
    std::string hash;
    while (in >> g >> step >> slot >> hash) seen[step][g].emplace(slot, hash);
  }
  window_history out;
  for (const auto& [step, by_generation] : seen) {
    const auto& [g, windows] = *by_generation.rbegin();
    for (int64_t slot = 0; slot < k_slots; slot++) {
      EXPECT_EQ(windows.count(slot), 1u) << "step " << step << " slot " << slot << " in generation " << g;
    }
    for (const auto& [slot, hash] : windows) out[step][slot] = hash;
  }
  return out;
}

// The same spec trained without a fault on one rank (trained once per step count).
struct reference {
  std::string sha;
  window_history windows;
};
const reference& reference_of(int steps = 10) {
  static std::map<int, reference> cache;
  auto it = cache.find(steps);
  if (it != cache.end()) return it->second;
  const std::string dir = lz::test::test_dir("ft-ref-" + std::to_string(steps));
  const auto r = run_lazarus(args(dir, 1, "", steps), dir);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  reference ref{sha_of(dir), final_windows(dir)};
  EXPECT_EQ(ref.windows.size(), static_cast<size_t>(steps));
  return cache.emplace(steps, std::move(ref)).first->second;
}

// The run in `dir` ended with the reference's weights, trained each window of the spec
// exactly once in its final history, and left checkpoints that verify.
void expect_reference_result(const std::string& dir, int steps = 10) {
  const reference& ref = reference_of(steps);
  EXPECT_EQ(sha_of(dir), ref.sha);
  EXPECT_EQ(final_windows(dir), ref.windows) << "the final history trains other windows";
  const auto verify = run_lazarus("ckpt verify " + dir, dir + "/verify");
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
}

TEST(fault_tolerance, a_nan_loss_on_one_rank_is_discarded_everywhere_and_the_step_tried_again) {
  // step 6 also fills the snapshot of the save of step 5: the retry must fill it again
  const std::string dir = lz::test::test_dir("ft-nan");
  const auto r = run_lazarus(args(dir, 2), dir, "LAZARUS_FAULT=train.loss@6#1:nan");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("non-finite loss at step 5"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("tried again (1 of 3)"), std::string::npos) << r.output;
  expect_reference_result(dir);
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

// The step a run's log says its recovery restored, and from where ("memory" or "disk").
std::pair<int64_t, std::string> restored_from(const std::string& output) {
  const std::string key = "ms from step ";
  const auto at = output.find(key);
  if (at == std::string::npos) return {-1, ""};
  const auto open = output.find('(', at), semi = output.find(';', at);
  return {std::stoll(output.substr(at + key.size())), output.substr(open + 1, semi - open - 1)};
}

// The survivor keeps its process and state; the new rank 1 gets its part of the state from
// the survivor's memory (its own copy and its replica of rank 1's), so no step is lost.
TEST(fault_tolerance, a_worker_killed_mid_run_is_replaced_from_the_survivors_memory_losing_no_step) {
  const std::string dir = lz::test::test_dir("ft-kill");
  const auto r = run_lazarus(args(dir, 2), dir, "LAZARUS_FAULT=train.after_step@7#1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("rank 1 on node 'node0'"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("carries on as rank 0"), std::string::npos) << r.output;
  const std::string summary = read_file(dir + "/summary.json");
  EXPECT_EQ(json_field(summary, "faults"), "1") << summary;
  EXPECT_EQ(json_field(summary, "recoveries"), "1") << summary;
  // the kill follows rank 1's report of step 7, which may or may not leave the process
  // first: 6 or 7 finished steps, each of them held in memory by both ranks
  const auto [restored, source] = restored_from(r.output);
  EXPECT_EQ(source, "memory") << r.output;
  EXPECT_TRUE(restored == 6 || restored == 7) << r.output;
  EXPECT_EQ(json_field(summary, "steps_lost"), "0") << summary;
  EXPECT_EQ(json_field(summary, "generations"), "2") << summary;
  expect_reference_result(dir);
}

// Without in-memory copies the same fault restores the newest committed checkpoint.
TEST(fault_tolerance, without_replicas_a_killed_worker_restores_the_newest_checkpoint) {
  const std::string dir = lz::test::test_dir("ft-kill-disk");
  const auto r = run_lazarus(args(dir, 2, "--set fault_tolerance.replica_every_steps=0"), dir,
                             "LAZARUS_FAULT=train.after_step@7#1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string summary = read_file(dir + "/summary.json");
  // back to checkpoint 5, or to the start when the asynchronous save of step 5 was not yet
  // durable on both ranks (it is then abandoned)
  const auto [restored, source] = restored_from(r.output);
  EXPECT_TRUE((restored == 5 && source == "disk") || (restored == 0 && source == "start")) << r.output;
  const int64_t lost = std::stoll(json_field(summary, "steps_lost"));
  EXPECT_TRUE(restored + lost == 6 || restored + lost == 7) << summary;
  expect_reference_result(dir);
}

// A fault injected with LAZARUS_FAULT into a 2-rank run; the run recovers on its own.
struct chaos_case {
  const char* name;
  const char* fault;
  const char* extra;           // more --set arguments
  const char* says;            // in the output
  int faults, generations;
  const char* first_restore;   // where the first recovery restored from: "memory", "disk"
};

class chaos : public ::testing::TestWithParam<chaos_case> {};

TEST_P(chaos, the_run_recovers_on_its_own_with_the_reference_result) {
  const chaos_case& c = GetParam();
  const std::string dir = lz::test::test_dir(std::string("ft-chaos-") + c.name);
  const auto r = run_lazarus(args(dir, 2, c.extra), dir, std::string("LAZARUS_FAULT=") + c.fault);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find(c.says), std::string::npos) << r.output;
  const std::string summary = read_file(dir + "/summary.json");
  EXPECT_EQ(json_field(summary, "faults"), std::to_string(c.faults)) << summary;
  EXPECT_EQ(json_field(summary, "generations"), std::to_string(c.generations)) << summary;
  EXPECT_GE(lz::test::json_number(summary, "recoveries"), 1) << summary;
  EXPECT_EQ(restored_from(r.output).second, c.first_restore) << r.output;
  expect_reference_result(dir);
}

INSTANTIATE_TEST_SUITE_P(
    fault_tolerance, chaos,
    ::testing::Values(
        // rank 1 dies after its reduction; rank 0 waits for it in the all-gather
        chaos_case{"mid_collective", "train.before_update@7#1", "", "rank 1 on node 'node0'", 1, 2, "memory"},
        // rank 1 dies writing its shard of step 6: that save is abandoned, and the next
        // world restores step 6 from the ranks' in-memory copies
        chaos_case{"mid_checkpoint", "shard.mid_write@6#1", "--set checkpoint.every_steps=3",
                   "the save of step 6 is abandoned", 1, 2, "memory"},
        // rank 1 stops (SIGSTOP) after step 7: rank 0 waits in a collective; the hang
        // timeout fences the world: rank 1 is killed, rank 0 aborts its own wait and
        // carries on, and the new rank 1 gets its state from rank 0's copies
        chaos_case{"stopped_worker", "train.after_step@7#1:stop", "",
                   "(the hang timeout): rank 1 on node 'node0'", 1, 2, "memory"},
        // rank 1 dies at step 7, then rank 0 of the next world (the survivor) two steps
        // after it recovered from memory; the new rank 1 then holds both copies
        chaos_case{"two_faults", "train.after_step@7#1,train.after_step@9#0%1",
                   "--set checkpoint.async=false",
                   "rank 0 on node 'node0'", 2, 3, "memory"},
        // rank 1 dies at step 7, then rank 0 of the next world (the survivor) while it
        // restores from memory: the copies died with it, the third world (the first to
        // finish a recovery) reads the disk
        chaos_case{"fault_during_recovery", "train.after_step@7#1,worker.restore#0%1",
                   "--set checkpoint.async=false",
                   "fault injected at worker.restore", 2, 3, "disk"},
        // rank 1 dies at step 7, then rank 0 (the survivor) as it answers its fence: the
        // copies died with it, and the next world starts from the newest checkpoint
        chaos_case{"survivor_killed_during_the_fence", "train.after_step@7#1,worker.fenced#0",
                   "--set checkpoint.async=false",
                   "a survivor of the last world is gone before the next began", 2, 2, "disk"},
        // copies every 4 steps, checkpoints every 5: after a fault at step 7 checkpoint 5
        // is newer than the copies of step 4, and wins
        chaos_case{"checkpoint_newer_than_copies", "train.after_step@7#1",
                   "--set checkpoint.async=false --set fault_tolerance.replica_every_steps=4",
                   "checkpoint step 5 is newer: restoring from disk", 1, 2, "disk"}),
    [](const ::testing::TestParamInfo<chaos_case>& i) { return std::string(i.param.name); });

// A recovered run whose coordinator is then killed resumes with the same command: the new
// start goes on from the next generation (the catalog keeps the last one), so the record of
// trained windows stays one history, and the result is the reference's.
TEST(fault_tolerance, a_recovered_run_killed_later_resumes_in_a_later_generation_with_the_reference_result) {
  const std::string dir = lz::test::test_dir("ft-kill-resume");
  const std::string cmd = args(dir, 2, "", 15);
  const auto killed = run_lazarus(cmd, dir, "LAZARUS_FAULT=train.after_step@7#1,catalog.after_commit@10");
  ASSERT_NE(killed.exit_code, 0) << killed.output;
  EXPECT_NE(killed.output.find("recovered in"), std::string::npos) << killed.output;
  const auto resumed = run_lazarus(cmd, dir);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("g2 step 10: resumed from step 10"), std::string::npos)
      << resumed.output;
  const std::string summary = read_file(dir + "/summary.json");
  EXPECT_EQ(json_field(summary, "generations"), "1") << "this start: one world";
  EXPECT_TRUE(std::filesystem::exists(dir + "/windows/g2-rank0.tsv"));
  expect_reference_result(dir, 15);
}

// Rank 1's worker dies in slot 1 of the node three times in a row (the second and third
// time in step 4, the first after the step 3 that the worlds restore from memory): with respawn_retries = 2 the slot is quarantined, no
// replacement comes, and the run ends on one rank in the slot that works.
TEST(fault_tolerance, a_slot_that_keeps_failing_is_quarantined_and_the_world_does_without_it) {
  const std::string dir = lz::test::test_dir("ft-quarantine");
  const auto r = run_lazarus(
      args(dir, 2, "--set fault_tolerance.respawn_retries=2"), dir,
      "LAZARUS_FAULT=train.after_step@3#1,train.before_update@4#1%1,train.before_update@4#1%2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("slot 1 of node 'node0' is quarantined after 3 fault(s) in a row"),
            std::string::npos) << r.output;
  EXPECT_NE(r.output.find("shrinking from 2 to 1 rank(s)"), std::string::npos) << r.output;
  const std::string summary = read_file(dir + "/summary.json");
  EXPECT_EQ(json_field(summary, "faults"), "3") << summary;
  EXPECT_EQ(json_field(summary, "final_world_size"), "1") << summary;
  expect_reference_result(dir);
}

// The node agent with the worker of rank 1 dies with it: its slot is gone, no replacement
// comes within replace_timeout_ms, and the run goes on with one rank.
TEST(fault_tolerance, a_killed_node_agent_shrinks_the_world_and_the_run_ends_with_the_reference_result) {
  const std::string dir = lz::test::test_dir("ft-node-kill");
  lazarus_process run(concat({"run", "--no-progress", "--state-dir", dir}, spec_sets(20, 2, 2)), {});
  ASSERT_TRUE(run.read_until("g0 step 3/20", 120s)) << run.output();
  const pid_t node1 = node_pid(run.output(), "node1");
  ASSERT_GT(node1, 0) << run.output();
  ASSERT_EQ(::kill(node1, SIGKILL), 0);
  ASSERT_EQ(run.wait(180s), 0) << run.output();
  EXPECT_NE(run.output().find("node 'node1'"), std::string::npos) << run.output();
  EXPECT_NE(run.output().find("no replacement came: shrinking from 2 to 1 rank(s)"),
            std::string::npos) << run.output();
  const std::string summary = read_file(dir + "/summary.json");
  EXPECT_EQ(json_field(summary, "final_world_size"), "1") << summary;
  EXPECT_GE(lz::test::json_number(summary, "faults"), 1) << summary;
  // the survivor held both ranges (its own and its buddy's, the lost rank's)
  EXPECT_EQ(restored_from(run.output()).second, "memory") << run.output();
  EXPECT_EQ(run.output().find("did not answer the fence in time"), std::string::npos) << run.output();
  expect_reference_result(dir, 20);
}

// A node agent frozen (SIGSTOP) while its worker trains on: its heartbeats stop, the node is
// lost after heartbeat_timeout_ms, the world is fenced (the frozen node's worker fails with
// its peer) and shrinks to the live node; the agent, thawed, finds the coordinator gone
// from its side and ends.
TEST(fault_tolerance, a_frozen_node_agent_is_lost_after_the_heartbeat_timeout_and_the_run_goes_on) {
  const std::string dir = lz::test::test_dir("ft-node-frozen");
  lazarus_process run(concat({"run", "--no-progress", "--state-dir", dir}, spec_sets(80, 2, 2)), {});
  ASSERT_TRUE(run.read_until("g0 step 4/80", 120s)) << run.output();
  const pid_t node1 = node_pid(run.output(), "node1");
  ASSERT_GT(node1, 0) << run.output();
  ASSERT_EQ(::kill(node1, SIGSTOP), 0);
  const bool shrunk = run.read_until("no replacement came: shrinking from 2 to 1 rank(s)", 60s);
  ::kill(node1, SIGCONT);
  ASSERT_TRUE(shrunk) << run.output();
  ASSERT_EQ(run.wait(180s), 0) << run.output();
  // lost by its connection's timeout or its missed heartbeats, whichever comes first
  EXPECT_TRUE(run.output().find("node 'node1' was lost") != std::string::npos ||
              run.output().find("node 'node1' sent no heartbeat") != std::string::npos)
      << run.output();
  EXPECT_TRUE(lz::test::wait_gone({node1}, 30s).empty()) << "the thawed agent ends";
  expect_reference_result(dir, 80);
}

// A node agent killed and its replacement started at once, so that the replacement joins
// while the survivor is still being fenced: the next world waits for the survivor's answer
// (and the backoff) before it starts, and restores from the copies the survivor holds
// (its own and its buddy's, the lost rank's), training no step again.
TEST(fault_tolerance, a_replacement_joining_during_the_fence_waits_for_it_and_the_world_restores_from_memory) {
  const std::string dir = lz::test::test_dir("ft-node-replaced");
  auto cluster = lz::test::start_two_nodes(
      concat({"--no-progress", "--state-dir", dir}, spec_sets(20, 2, 2)), 1);
  lazarus_process& coordinator = cluster.coordinator();
  ASSERT_FALSE(cluster.address().empty()) << coordinator.output();
  ASSERT_TRUE(coordinator.read_until("g0 step 6/20", 120s)) << coordinator.output();
  ASSERT_EQ(::kill(cluster.beta->pid(), SIGKILL), 0);
  lazarus_process c({"node", "--join", cluster.address(), "--slots", "1", "--name", "gamma"}, {});
  ASSERT_EQ(coordinator.wait(180s), 0) << coordinator.output();
  EXPECT_EQ(cluster.alpha->wait(30s), 0) << cluster.alpha->output();
  EXPECT_EQ(c.wait(30s), 0) << c.output();
  // The next world starts only after the survivor answered: a memory restore. (The
  // survivor's own wait on the lost peer ends with its abort, so it answers in time.)
  const std::string& out = coordinator.output();
  EXPECT_NE(out.find("(memory; 0 step(s) trained again)"), std::string::npos)
      << out << "\nthe survivor's node agent:\n" << cluster.alpha->output();
  EXPECT_EQ(out.find("did not answer the fence in time"), std::string::npos) << out;
  expect_reference_result(dir, 20);
}

// 4 ranks on two node agents of 2 slots; one agent dies: the run waits for a replacement,
// shrinks to 2 ranks, and grows back to 4 at the step boundary after a new agent joins
// (under the lost one's name, as a restarted machine would).
TEST(fault_tolerance, the_world_shrinks_from_4_to_2_ranks_and_grows_back_to_4_with_the_reference_result) {
  const std::string dir = lz::test::test_dir("ft-shrink-grow");
  auto cluster = lz::test::start_two_nodes(
      concat({"--no-progress", "--state-dir", dir}, spec_sets(40, 4, 2)), 2);
  lazarus_process& coordinator = cluster.coordinator();
  ASSERT_FALSE(cluster.address().empty()) << coordinator.output();
  ASSERT_TRUE(coordinator.read_until("g0 step 4/40", 120s)) << coordinator.output();
  ASSERT_EQ(::kill(cluster.beta->pid(), SIGKILL), 0);
  ASSERT_TRUE(coordinator.read_until("no replacement came: shrinking from 4 to 2 rank(s)", 60s))
      << coordinator.output();
  lazarus_process c({"node", "--join", cluster.address(), "--slots", "2", "--name", "beta"}, {});
  ASSERT_EQ(coordinator.wait(180s), 0) << coordinator.output();
  EXPECT_EQ(cluster.alpha->wait(30s), 0) << cluster.alpha->output();
  EXPECT_EQ(c.wait(30s), 0) << c.output();
  EXPECT_NE(coordinator.output().find("growing from 2 to 4 rank(s)"), std::string::npos)
      << coordinator.output();
  // the two survivors held every range of the lost node's ranks (their buddies' copies)
  EXPECT_EQ(restored_from(coordinator.output()).second, "memory") << coordinator.output();
  EXPECT_EQ(coordinator.output().find("did not answer the fence in time"), std::string::npos)
      << coordinator.output();
  const std::string summary = read_file(dir + "/summary.json");
  EXPECT_EQ(json_field(summary, "final_world_size"), "4") << summary;
  const std::string metrics = read_file(dir + "/metrics.jsonl");
  EXPECT_NE(metrics.find("\"world_size\":2"), std::string::npos) << metrics;
  expect_reference_result(dir, 40);
}

}  // namespace
