// Resume never loses or silently changes a run: a lost or damaged catalog, unreadable
// shards, changed specs and bad input end in a clear error or a correct resume, and
// nothing committed is lost. Real processes, real files, a real RocksDB.
#include <csignal>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "engine/token_shard.hpp"
#include "tests/cli/cli_support.hpp"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using lz::test::json_field;
using lz::test::read_file;
using lz::test::run_lazarus;
using lz::test::tree_snapshot;

std::string run_args(const std::string& dir, int steps = 10, const std::string& extra = "") {
  return "run --no-progress --state-dir " + dir + lz::test::corpus_set_args() +
         " --set run.steps=" + std::to_string(steps) +
         " --set data.seq_len=64 --set run.val_every_steps=5 --set run.sample_tokens=0"
         " --set run.val_batches=2 --set checkpoint.every_steps=5 --set checkpoint.keep_last=3 " +
         extra;
}

std::string sha_of(const std::string& dir) {
  return json_field(read_file(dir + "/summary.json"), "weights_sha256");
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// The sha of an uninterrupted run of `steps` steps.
std::string reference_sha(int steps) {
  static std::map<int, std::string> cache;
  if (!cache.count(steps)) {
    const std::string dir = lz::test::test_dir("safety-reference-" + std::to_string(steps));
    const auto r = run_lazarus(run_args(dir, steps), dir);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    cache[steps] = sha_of(dir);
  }
  return cache[steps];
}

// A finished 10-step run (checkpoints at 5 and 10) in a fresh directory.
std::string finished_run(const std::string& name, const std::string& extra = "") {
  const std::string dir = lz::test::test_dir(name);
  const auto r = run_lazarus(run_args(dir, 10, extra), dir);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return dir;
}

std::string ls_json(const std::string& dir) {
  return run_lazarus("ckpt ls --json " + dir, dir + "-cmd").output;
}

// Continues the 10-step run in `dir` to 20 steps: it must restart from its step 10 and end
// with the weights of an uninterrupted 20-step run.
void expect_resumes_from_10_to_the_reference(const std::string& dir) {
  const auto resumed = run_lazarus(run_args(dir, 20), dir + "-cmd");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_EQ(json_field(read_file(dir + "/summary.json"), "resumed_from_step"), "10");
  EXPECT_EQ(sha_of(dir), reference_sha(20));
}

TEST(resume_safety, a_lost_catalog_current_file_is_refused_then_rebuilt) {
  const std::string dir = finished_run("safety-lost-current");
  fs::remove(dir + "/catalog/CURRENT");
  const auto before = tree_snapshot(dir, dir + "/catalog");
  for (int attempt = 0; attempt < 2; ++attempt) {  // the second attempt sees the same state
    const auto r = run_lazarus(run_args(dir, 20), dir + "-cmd");
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_TRUE(contains(r.output, "CURRENT is missing")) << r.output;
    EXPECT_TRUE(contains(r.output, "lazarus ckpt rebuild-catalog")) << r.output;
  }
  EXPECT_EQ(tree_snapshot(dir, dir + "/catalog"), before) << "a refused run changed files";
  const auto rebuilt = run_lazarus("ckpt rebuild-catalog " + dir, dir + "-cmd");
  ASSERT_EQ(rebuilt.exit_code, 0) << rebuilt.output;
  EXPECT_TRUE(contains(rebuilt.output, "step 10: 1 shard(s), verified, added")) << rebuilt.output;
  expect_resumes_from_10_to_the_reference(dir);
}

TEST(resume_safety, a_deleted_catalog_is_refused_then_rebuilt) {
  const std::string dir = finished_run("safety-deleted-catalog");
  fs::remove_all(dir + "/catalog");
  const auto before = tree_snapshot(dir);
  const auto r = run_lazarus(run_args(dir, 20), dir + "-cmd");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "holds an earlier run")) << r.output;
  EXPECT_TRUE(contains(r.output, "rebuild-catalog")) << r.output;
  EXPECT_EQ(tree_snapshot(dir), before) << "a refused run changed files";
  ASSERT_EQ(run_lazarus("ckpt rebuild-catalog " + dir, dir + "-cmd").exit_code, 0);
  expect_resumes_from_10_to_the_reference(dir);
}

TEST(resume_safety, a_deleted_write_ahead_log_loses_no_checkpoint) {
  const std::string dir = finished_run("safety-deleted-wal");
  int removed = 0;
  for (const auto& e : fs::directory_iterator(dir + "/catalog")) {
    if (e.path().extension() == ".log") removed += fs::remove(e.path()) ? 1 : 0;
  }
  ASSERT_GT(removed, 0);
  expect_resumes_from_10_to_the_reference(dir);
}

TEST(resume_safety, ckpt_commands_find_a_checkpoint_dir_without_a_flag) {
  const std::string base = lz::test::test_dir("safety-ckpt-dir");
  const std::string dir = base + "/state";
  // a relative checkpoint.dir, resolved against the directory the run starts in
  const auto r = run_lazarus(run_args(dir, 10, "--set checkpoint.dir=ckpt"), dir, "", base);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto verify = run_lazarus("ckpt verify " + dir, dir + "-cmd");
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
  EXPECT_TRUE(contains(verify.output, "step 10: ok")) << verify.output;
  // started from another directory, the same relative path names another place: refused
  const std::string elsewhere = base + "/elsewhere";
  fs::create_directories(elsewhere);
  const std::string ls_before = ls_json(dir);
  const auto moved = run_lazarus(run_args(dir, 20, "--set checkpoint.dir=ckpt"), dir + "-cmd", "",
                                 elsewhere);
  EXPECT_EQ(moved.exit_code, 1) << moved.output;
  EXPECT_TRUE(contains(moved.output, "recorded when the run started")) << moved.output;
  EXPECT_FALSE(fs::exists(elsewhere + "/ckpt")) << "a refused run created the checkpoint dir";
  EXPECT_EQ(ls_json(dir), ls_before);
}

TEST(resume_safety, an_unreadable_checkpoint_is_reported_but_never_marked_corrupt) {
  const std::string dir = finished_run("safety-unreadable");
  fs::rename(dir + "/checkpoints", dir + "/checkpoints.away");
  const auto verify = run_lazarus("ckpt verify " + dir, dir + "-cmd");
  EXPECT_EQ(verify.exit_code, 1) << verify.output;
  EXPECT_TRUE(contains(verify.output, "UNREADABLE")) << verify.output;
  EXPECT_TRUE(contains(verify.output, "shard_00000_of_00001.lzs")) << verify.output;
  EXPECT_FALSE(contains(ls_json(dir), "\"status\":\"corrupt\"")) << ls_json(dir);
  // a run that can restore none of its checkpoints stops, naming each and why
  const auto refused = run_lazarus(run_args(dir, 20), dir + "-cmd");
  EXPECT_EQ(refused.exit_code, 1) << refused.output;
  EXPECT_TRUE(contains(refused.output, "none can be restored")) << refused.output;
  EXPECT_TRUE(contains(refused.output, "step 10: cannot be read")) << refused.output;
  EXPECT_TRUE(contains(refused.output, "step 5: cannot be read")) << refused.output;
  EXPECT_FALSE(fs::exists(dir + "/summary.json.tmp"));
  EXPECT_FALSE(contains(ls_json(dir), "\"status\":\"corrupt\"")) << ls_json(dir);
  // back in place: everything is there, verified, and the run resumes
  fs::rename(dir + "/checkpoints.away", dir + "/checkpoints");
  const auto again = run_lazarus("ckpt verify " + dir, dir + "-cmd");
  EXPECT_EQ(again.exit_code, 0) << again.output;
  expect_resumes_from_10_to_the_reference(dir);
}

TEST(resume_safety, start_over_moves_the_old_run_aside_and_deletes_nothing) {
  const std::string dir = finished_run("safety-start-over");
  fs::rename(dir + "/checkpoints", dir + "/checkpoints.away");
  fs::create_directories(dir + "/checkpoints");
  const auto r = run_lazarus(run_args(dir, 10) + " --start-over", dir + "-cmd");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(json_field(read_file(dir + "/summary.json"), "resumed_from_step"), "0");
  EXPECT_EQ(sha_of(dir), reference_sha(10));
  ASSERT_TRUE(fs::exists(dir + "/attic"));
  const auto stamp = fs::directory_iterator(dir + "/attic")->path();
  EXPECT_TRUE(fs::exists(stamp / "catalog" / "CURRENT"));
  EXPECT_TRUE(fs::exists(stamp / "metrics.jsonl"));
  EXPECT_TRUE(fs::exists(dir + "/checkpoints.away/step_00000010/shard_00000_of_00001.lzs"));
}

TEST(resume_safety, verify_clears_a_corrupt_mark_once_the_shard_checks_out) {
  const std::string dir = finished_run("safety-clear-mark");
  const std::string shard = dir + "/checkpoints/step_00000010/shard_00000_of_00001.lzs";
  const std::string original = read_file(shard);
  std::string damaged = original;
  damaged[damaged.size() - 100] ^= 0x5a;
  std::ofstream(shard, std::ios::binary | std::ios::trunc) << damaged;
  const auto bad = run_lazarus("ckpt verify " + dir, dir + "-cmd");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_TRUE(contains(bad.output, "step 10: CORRUPT")) << bad.output;
  EXPECT_TRUE(contains(ls_json(dir), "\"status\":\"corrupt\""));
  std::ofstream(shard, std::ios::binary | std::ios::trunc) << original;
  const auto good = run_lazarus("ckpt verify " + dir, dir + "-cmd");
  EXPECT_EQ(good.exit_code, 0) << good.output;
  EXPECT_FALSE(contains(ls_json(dir), "\"status\":\"corrupt\"")) << ls_json(dir);
  const auto events = run_lazarus("ckpt events --json " + dir, dir + "-cmd");
  EXPECT_TRUE(contains(events.output, "\"kind\":\"verify_failed\"")) << events.output;
  EXPECT_TRUE(contains(events.output, "\"kind\":\"verify_cleared\"")) << events.output;
}

struct changed_key {
  const char* name;
  const char* set;       // --set arguments of the second start
  const char* expected;  // in the refusal
};

class changed_spec : public ::testing::TestWithParam<changed_key> {};

TEST_P(changed_spec, is_refused_naming_the_key_and_changes_nothing) {
  const changed_key& c = GetParam();
  const std::string dir = finished_run(std::string("safety-changed-") + c.name);
  const auto before = tree_snapshot(dir, dir + "/catalog");
  const std::string ls_before = ls_json(dir);
  const auto r = run_lazarus(run_args(dir, 20, c.set), dir + "-cmd");
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, c.expected)) << r.output;
  EXPECT_EQ(tree_snapshot(dir, dir + "/catalog"), before) << "a refused run changed files";
  EXPECT_EQ(ls_json(dir), ls_before);
  const auto events = run_lazarus("ckpt events --json " + dir, dir + "-cmd");
  EXPECT_TRUE(contains(events.output, "\"kind\":\"start_refused\"")) << events.output;
}

INSTANTIATE_TEST_SUITE_P(
    keys, changed_spec,
    ::testing::Values(changed_key{"seq_len", "--set data.seq_len=32", "data.seq_len"},
                      changed_key{"micro_batch", "--set data.micro_batch=4", "data.micro_batch"},
                      changed_key{"slots", "--set data.slots=4", "data.slots"},
                      changed_key{"seed", "--set run.seed=7", "run.seed"},
                      changed_key{"layers", "--set model.layers=2", "model.layers"}),
    [](const auto& test_info) { return std::string(test_info.param.name); });

TEST(resume_safety, fewer_steps_than_the_newest_checkpoint_and_other_data_are_refused) {
  const std::string dir = finished_run("safety-steps-data");
  const std::string ls_before = ls_json(dir);
  const auto back = run_lazarus(run_args(dir, 5), dir + "-cmd");
  EXPECT_NE(back.exit_code, 0);
  EXPECT_TRUE(contains(back.output, "run.steps = 5")) << back.output;
  // the validation shard as training data: another data set
  const std::string data = std::string(LZ_TESTDATA) + "/kjv";
  const auto other = run_lazarus(run_args(dir, 20, "--set data.train_shards=" + data +
                                                       "/val_*.bin"), dir + "-cmd");
  EXPECT_NE(other.exit_code, 0);
  EXPECT_TRUE(contains(other.output, "is not the data this run was trained on")) << other.output;
  EXPECT_TRUE(contains(other.output, "val_000.bin")) << other.output;
  EXPECT_EQ(ls_json(dir), ls_before);
}

TEST(resume_safety, allowed_changes_are_logged_and_recorded_as_events) {
  const std::string dir = finished_run("safety-allowed");
  const auto r = run_lazarus(run_args(dir, 20, "--set optimizer.lr=0.002 --set run.val_batches=3"),
                             dir + "-cmd");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "optimizer.lr changed from 0.003 to 0.002")) << r.output;
  const auto events = run_lazarus("ckpt events --json " + dir, dir + "-cmd");
  EXPECT_TRUE(contains(events.output, "\"key\":\"optimizer.lr\"")) << events.output;
  EXPECT_TRUE(contains(events.output, "\"key\":\"run.val_batches\"")) << events.output;
  EXPECT_TRUE(contains(events.output, "\"kind\":\"resumed\"")) << events.output;
  EXPECT_TRUE(contains(events.output, "\"kind\":\"checkpoint_committed\"")) << events.output;
  // run.log holds both starts
  const std::string log = read_file(dir + "/run.log");
  size_t starts = 0;
  for (size_t at = log.find("==== lazarus run starts"); at != std::string::npos;
       at = log.find("==== lazarus run starts", at + 1)) {
    starts++;
  }
  EXPECT_EQ(starts, 2u) << log;
}

// Starts `lazarus ARGS` in the background, output to `log`.
pid_t spawn_lazarus(const std::string& args, const std::string& log) {
  const std::string cmd = std::string("exec ") + LZ_EXE + " " + args + " > " + log + " 2>&1";
  char* argv[] = {const_cast<char*>("sh"), const_cast<char*>("-c"),
                  const_cast<char*>(cmd.c_str()), nullptr};
  pid_t pid = 0;
  EXPECT_EQ(::posix_spawn(&pid, "/bin/sh", nullptr, nullptr, argv, environ), 0);
  return pid;
}

TEST(resume_safety, a_second_run_on_a_live_state_dir_changes_nothing) {
  const std::string dir = lz::test::test_dir("safety-live");
  const pid_t first = spawn_lazarus(run_args(dir, 100000), dir + "-first.log");
  // wait (bounded) until the first run has trained a step
  bool training = false;
  for (int i = 0; i < 600 && !training; ++i) {
    training = contains(read_file(dir + "/metrics.jsonl"), "\"step\":2,");
    if (!training) ::usleep(50 * 1000);
  }
  ASSERT_TRUE(training) << read_file(dir + "-first.log");
  const std::string spec_before = read_file(dir + "/spec.toml");
  const auto second = run_lazarus(run_args(dir, 20, "--set data.seq_len=32"), dir + "-cmd");
  EXPECT_EQ(second.exit_code, 1) << second.output;
  EXPECT_TRUE(contains(second.output, "another process holds")) << second.output;
  EXPECT_EQ(read_file(dir + "/spec.toml"), spec_before);
  EXPECT_TRUE(contains(read_file(dir + "/run.log"), "==== lazarus run starts"));
  // the read commands work beside the live run
  const auto ls = run_lazarus("ckpt ls " + dir, dir + "-cmd");
  EXPECT_EQ(ls.exit_code, 0) << ls.output;
  const auto verify = run_lazarus("ckpt verify " + dir, dir + "-cmd");
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
  EXPECT_TRUE(contains(verify.output, "a run holds the catalog")) << verify.output;
  ::kill(first, SIGTERM);
  int status = 0;
  ::waitpid(first, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGTERM) << status;
  EXPECT_FALSE(contains(read_file(dir + "/run.log"), "seq_len = 32"));
}

TEST(resume_safety, two_runs_started_at_once_in_a_new_state_dir_leave_one_consistent_run) {
  const std::string dir = lz::test::test_dir("safety-twice");
  const pid_t a = spawn_lazarus(run_args(dir, 10), dir + "-a.log");
  const pid_t b = spawn_lazarus(run_args(dir, 10), dir + "-b.log");
  int status_a = 0, status_b = 0;
  ::waitpid(a, &status_a, 0);
  ::waitpid(b, &status_b, 0);
  ASSERT_TRUE(WIFEXITED(status_a) && WIFEXITED(status_b));
  const int ra = WEXITSTATUS(status_a), rb = WEXITSTATUS(status_b);
  EXPECT_TRUE((ra == 0 || ra == 1) && (rb == 0 || rb == 1))
      << read_file(dir + "-a.log") << read_file(dir + "-b.log");
  EXPECT_TRUE(ra == 0 || rb == 0) << read_file(dir + "-a.log") << read_file(dir + "-b.log");
  for (const auto& [rc, log] : {std::pair{ra, dir + "-a.log"}, std::pair{rb, dir + "-b.log"}}) {
    if (rc == 1) {
      const std::string text = read_file(log);
      EXPECT_TRUE(contains(text, "another process") || contains(text, "never created over"))
          << text;
    }
  }
  // the state dir holds one run, whole: its identity is its catalog's, and it resumes
  const std::string identity = read_file(dir + "/run_identity");
  const auto inspect = run_lazarus("ckpt inspect --json " + dir, dir + "-cmd");
  ASSERT_EQ(inspect.exit_code, 0) << inspect.output;
  EXPECT_TRUE(contains(identity, "run_id=" + json_field(inspect.output, "run_id") + "\n"))
      << identity << inspect.output;
  const auto again = run_lazarus(run_args(dir, 20), dir + "-cmd");
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_EQ(sha_of(dir), reference_sha(20));
}

TEST(resume_safety, absurd_model_sizes_are_refused_before_anything_starts) {
  const std::string dir = lz::test::test_dir("safety-absurd");
  for (const char* set : {"--set model.channels=1000000000", "--set model.layers=1000000"}) {
    const auto r = run_lazarus(run_args(dir + "/state", 10, set), dir);
    EXPECT_EQ(r.exit_code, 2) << set << "\n" << r.output;
    EXPECT_TRUE(contains(r.output, "--set: model.")) << r.output;
  }
  // inside every bound but far beyond this machine's memory: refused with the figure
  const auto big = run_lazarus(run_args(dir + "/state", 10,
                                        "--set model.channels=16384 --set model.layers=512"
                                        " --set model.heads=16"), dir);
  EXPECT_EQ(big.exit_code, 1) << big.output;
  EXPECT_TRUE(contains(big.output, "GiB")) << big.output;
  EXPECT_FALSE(fs::exists(dir + "/state")) << "a refused run created its state dir";
}

TEST(resume_safety, a_validation_set_too_small_is_refused_at_start) {
  const std::string dir = lz::test::test_dir("safety-small-val");
  lz::engine::write_token_shard(dir + "/val_000.bin", std::vector<uint16_t>(40, 65));
  const auto r = run_lazarus(run_args(dir + "/state", 10, "--set data.val_shards=" + dir +
                                                              "/val_000.bin"), dir);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "fewer than one sequence")) << r.output;
  EXPECT_FALSE(fs::exists(dir + "/state"));
}

TEST(resume_safety, sigterm_during_evaluation_stops_at_a_batch_boundary) {
  const std::string dir = lz::test::test_dir("safety-eval-term");
  const auto r = run_lazarus(run_args(dir, 10, "--set run.val_batches=100000"), dir,
                             "LAZARUS_FAULT=eval.batch@5:term");
  EXPECT_EQ(r.exit_code, 128 + SIGTERM) << r.output;
  EXPECT_TRUE(contains(r.output, "stopped by signal 15")) << r.output;
  const std::string metrics = read_file(dir + "/metrics.jsonl");
  EXPECT_TRUE(contains(metrics, "\"step\":5,")) << metrics;
  EXPECT_FALSE(contains(metrics, "val_loss")) << "the evaluation was not cut short";
  EXPECT_TRUE(contains(ls_json(dir), "\"step\":5,"));
}

TEST(resume_safety, a_bad_metrics_line_is_dropped_with_a_warning_and_a_copy) {
  const std::string dir = finished_run("safety-metrics");
  std::vector<std::string> lines;
  {
    std::ifstream in(dir + "/metrics.jsonl");
    for (std::string line; std::getline(in, line);) lines.push_back(line);
  }
  ASSERT_EQ(lines.size(), 10u);
  lines[2] = "{\"step\":3,\"lo";  // a torn line
  {
    std::ofstream out(dir + "/metrics.jsonl", std::ios::trunc);
    for (const auto& l : lines) out << l << "\n";
  }
  const auto r = run_lazarus(run_args(dir, 15), dir + "-cmd");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "line(s) 3 of")) << r.output;
  bool copied = false;
  for (const auto& e : fs::directory_iterator(dir)) {
    copied |= e.path().filename().string().starts_with("metrics.jsonl.") &&
              read_file(e.path().string()).find("{\"step\":3,\"lo\n") != std::string::npos;
  }
  EXPECT_TRUE(copied) << "the original metrics were not kept";
  const std::string metrics = read_file(dir + "/metrics.jsonl");
  for (int step : {1, 2, 4, 10, 11, 15}) {
    EXPECT_TRUE(contains(metrics, "{\"step\":" + std::to_string(step) + ",")) << step;
  }
}

}  // namespace

namespace {

// Runs `script` with bash in a private mount namespace (its mounts vanish with it); false
// when this machine does not allow one.
bool mount_namespace_available() {
  return std::system("unshare -m true > /dev/null 2>&1") == 0;
}

int run_in_mount_namespace(const std::string& script, const std::string& path) {
  std::ofstream(path) << "set -u\n" << script;
  const int status = std::system(("unshare -m bash " + path).c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// "name=value" lines of a file, as printed by the scripts below.
std::string value_of(const std::string& text, const std::string& name) {
  const size_t at = text.find(name + "=");
  if (at == std::string::npos) return "";
  const size_t end = text.find('\n', at);
  return text.substr(at + name.size() + 1, end - at - name.size() - 1);
}

TEST(resume_safety, a_read_only_state_dir_is_read_but_never_crashes_a_command) {
  if (!mount_namespace_available()) {
    GTEST_SKIP() << "needs `unshare -m` (root or user namespaces) for a read-only bind mount";
  }
  const std::string dir = finished_run("safety-read-only");
  const std::string out = dir + "-ro";
  fs::create_directories(out);
  const std::string lz = LZ_EXE;
  const std::string script =
      "mount --bind " + dir + " " + dir + " && mount -o remount,bind,ro " + dir + " || exit 3\n" +
      lz + " " + run_args(dir, 20) + " > " + out + "/run.txt 2>&1; echo run=$? >> " + out + "/rc\n" +
      lz + " ckpt ls " + dir + " > " + out + "/ls.txt 2>&1; echo ls=$? >> " + out + "/rc\n" +
      lz + " ckpt verify " + dir + " > " + out + "/verify.txt 2>&1; echo verify=$? >> " + out +
      "/rc\n" + lz + " ckpt events " + dir + " > " + out + "/events.txt 2>&1; echo events=$? >> " +
      out + "/rc\n";
  ASSERT_EQ(run_in_mount_namespace(script, out + "/script.sh"), 0) << read_file(out + "/rc");
  const std::string rc = read_file(out + "/rc");
  EXPECT_EQ(value_of(rc, "run"), "1") << read_file(out + "/run.txt");
  EXPECT_TRUE(contains(read_file(out + "/run.txt"), "read-only")) << read_file(out + "/run.txt");
  EXPECT_EQ(value_of(rc, "ls"), "0") << read_file(out + "/ls.txt");
  EXPECT_TRUE(contains(read_file(out + "/ls.txt"), "\n10 ")) << read_file(out + "/ls.txt");
  EXPECT_EQ(value_of(rc, "verify"), "0") << read_file(out + "/verify.txt");
  EXPECT_TRUE(contains(read_file(out + "/verify.txt"), "without recording"));
  EXPECT_EQ(value_of(rc, "events"), "0") << read_file(out + "/events.txt");
  EXPECT_TRUE(contains(read_file(out + "/events.txt"), "checkpoint_committed"));
}

TEST(resume_safety, a_full_disk_is_a_clear_error_and_the_run_resumes_once_there_is_room) {
  if (!mount_namespace_available()) {
    GTEST_SKIP() << "needs `unshare -m` (root or user namespaces) for a small tmpfs";
  }
  const std::string dir = finished_run("safety-full-disk");
  const std::string out = dir + "-full";
  fs::create_directories(out);
  const std::string lz = LZ_EXE, mnt = out + "/mnt", state = out + "/mnt/state";
  const std::string script =
      "mkdir -p " + mnt + " && mount -t tmpfs -o size=96m tmpfs " + mnt + " || exit 3\n"
      "cp -a " + dir + " " + state + " || exit 4\n"
      "dd if=/dev/zero of=" + mnt + "/filler bs=1M > /dev/null 2>&1\n"
      "sync\n" +
      lz + " ckpt ls " + state + " > " + out + "/ls.txt 2>&1; echo ls=$? >> " + out + "/rc\n" +
      lz + " " + run_args(state, 20) + " > " + out + "/run.txt 2>&1; echo run=$? >> " + out + "/rc\n" +
      "rm " + mnt + "/filler\n" +
      lz + " ckpt verify " + state + " > " + out + "/verify.txt 2>&1; echo verify=$? >> " + out + "/rc\n" +
      lz + " " + run_args(state, 20) + " > " + out + "/run2.txt 2>&1; echo run2=$? >> " + out + "/rc\n" +
      "cp " + state + "/summary.json " + out + "/summary.json\n";
  ASSERT_EQ(run_in_mount_namespace(script, out + "/script.sh"), 0) << read_file(out + "/rc");
  const std::string rc = read_file(out + "/rc");
  EXPECT_EQ(value_of(rc, "ls"), "0") << read_file(out + "/ls.txt");
  EXPECT_EQ(value_of(rc, "run"), "1") << read_file(out + "/run.txt");
  EXPECT_TRUE(contains(read_file(out + "/run.txt"), "full")) << read_file(out + "/run.txt");
  EXPECT_EQ(value_of(rc, "verify"), "0") << read_file(out + "/verify.txt");
  EXPECT_EQ(value_of(rc, "run2"), "0") << read_file(out + "/run2.txt");
  EXPECT_EQ(json_field(read_file(out + "/summary.json"), "resumed_from_step"), "10");
  EXPECT_EQ(json_field(read_file(out + "/summary.json"), "weights_sha256"), reference_sha(20));
}

}  // namespace
