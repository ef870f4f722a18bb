// runtime_bench: what the distributed runtime costs on this machine.
//
//   runtime_bench [--json] [--data DIR] [--steps N] [--lazarus PATH]
//
// 1. Control-plane overhead: the embedded default's model (L4 C128, B8 T128, 2 slots, 2
//    threads, no checkpoints, no evaluation) trained by `lazarus run` at one rank (a
//    coordinator, a node agent and a worker process; batches from the node's data feeder,
//    step reports to the coordinator) against the same spec's rank session driven
//    directly in this process (under the OpenMP wait policy lazarus sets for itself), in
//    the same run, alternating three times. Figures: median step time and tokens/s
//    over the whole training (summary.json's, which counts the slowest rank's step times)
//    against the direct loop's.
// 2. Scaling: 1 against 2 ranks of one thread each, and the share of a step spent in the
//    communicator (comm_ms) and waiting for data (data_wait_ms), from metrics.jsonl.
// 3. Startup and stop: from starting `lazarus run` to its first finished step (the first
//    "g0 step 1/" line), and from SIGINT to the exit of `lazarus run` (which waits for
//    every process it started).
// DIR holds the corpus shards (train_*.bin, val_*.bin: scripts/quickstart.sh makes them in
// data/kjv).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "actors/rank_session.hpp"
#include "bench/bench_process.hpp"
#include "bench/bench_support.hpp"
#include "config/json_writer.hpp"
#include "config/run_spec.hpp"
#include "engine/dataset.hpp"
#include "engine/digest.hpp"
#include "engine/inproc_communicator.hpp"

namespace {

using lz::bench::child;
using lz::bench::clock_type;
using lz::bench::json_number;
using lz::bench::median;
using lz::bench::read_file;

// The --set arguments of the benchmark's spec.
std::vector<std::string> sets(const std::string& data, int steps, int ranks, int threads) {
  std::vector<std::string> out;
  for (const std::string& kv :
       {"data.train_shards=" + data + "/train_*.bin", "data.val_shards=" + data + "/val_*.bin",
        "run.steps=" + std::to_string(steps), "parallel.ranks=" + std::to_string(ranks),
        "parallel.threads_per_rank=" + std::to_string(threads), std::string("run.val_every_steps=0"),
        std::string("run.val_batches=1"), std::string("run.sample_tokens=0"),
        std::string("checkpoint.every_steps=0")}) {
    out.insert(out.end(), {"--set", kv});
  }
  return out;
}

child start_run(const std::string& exe, const std::string& state_dir, std::vector<std::string> args) {
  std::filesystem::remove_all(state_dir);
  args.insert(args.begin(), {"run", "--no-progress", "--state-dir", state_dir});
  return lz::bench::spawn_lazarus(exe, args);
}

struct run_figures {
  double median_step_ms = 0, tokens_per_s = 0, comm_share = 0, data_share = 0;
  double wall_tokens_per_s = 0;  // from the coordinator's clock: first to last step
  std::string sha;
};

run_figures trained(const std::string& exe, const std::string& dir, const std::vector<std::string>& args) {
  child c = start_run(exe, dir, args);
  if (c.wait() != 0) {
    std::fprintf(stderr, "runtime_bench: lazarus run failed:\n%s\n", c.text.c_str());
    std::exit(1);
  }
  run_figures f;
  std::vector<double> step_ms;
  double comm = 0, data = 0, total = 0, first_ms = -1, last_ms = 0;
  int64_t lines = 0;
  std::istringstream metrics(read_file(dir + "/metrics.jsonl"));
  for (std::string line; std::getline(metrics, line); lines++) {
    if (first_ms < 0) first_ms = json_number(line, "unix_ms");
    last_ms = json_number(line, "unix_ms");
    const double ms = json_number(line, "step_ms");
    step_ms.push_back(ms);
    total += ms;
    comm += json_number(line, "comm_ms");
    data += json_number(line, "data_wait_ms");
  }
  const std::string summary = read_file(dir + "/summary.json");
  f.median_step_ms = median(step_ms);
  f.tokens_per_s = json_number(summary, "tokens_per_s");
  const double tokens_per_step = f.tokens_per_s * json_number(summary, "train_seconds") /
                                 static_cast<double>(lines);
  f.wall_tokens_per_s = tokens_per_step * static_cast<double>(lines - 1) / ((last_ms - first_ms) / 1e3);
  f.comm_share = comm / total;
  f.data_share = data / total;
  const size_t at = summary.find("\"weights_sha256\":\"");
  f.sha = at == std::string::npos ? "" : summary.substr(at + 18, 64);
  return f;
}

void emit(bool json, const lz::config::json_object& o) {
  if (json) std::printf("%s\n", o.str().c_str());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  // the OpenMP wait policy lazarus sets for itself (actors/main.cpp), for the direct loop too
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
    ::setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    ::execv("/proc/self/exe", argv);
  }
  bool json = false;
  int steps = 60;
  std::string data = "data/kjv";
  std::string exe = (std::filesystem::path(argv[0]).parent_path().parent_path() / "lazarus").string();
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    if (a == "--json") json = true;
    else if (a == "--data" && i + 1 < argc) data = std::filesystem::absolute(argv[++i]).string();
    else if (a == "--steps" && i + 1 < argc) steps = std::atoi(argv[++i]);
    else if (a == "--lazarus" && i + 1 < argc) exe = argv[++i];
    else {
      std::fprintf(stderr, "usage: runtime_bench [--json] [--data DIR] [--steps N] [--lazarus PATH]\n");
      return 2;
    }
  }
  data = std::filesystem::absolute(data).string();
  const std::string dir = (std::filesystem::temp_directory_path() / "lazarus-runtime-bench").string();
  std::filesystem::create_directories(dir);

  // 1. the rank session driven directly, then lazarus run at one rank: the same spec,
  // alternating three times (medians), so that drift on a shared machine hits both alike
  const auto one = sets(data, steps, 1, 2);
  std::vector<lz::config::spec_override> overrides;
  for (size_t i = 1; i < one.size(); i += 2) overrides.push_back(lz::config::parse_override(one[i]));
  const lz::config::run_spec spec = lz::config::embedded_default_spec(overrides);
  const auto train = lz::engine::token_dataset::from_glob(spec.data.train_shards, spec.model.vocab_size);
  std::vector<double> direct_ms_r, direct_tok_r, run_ms_r, run_tok_r, run_wall_r;
  for (int round = 0; round < 3; round++) {
    lz::engine::inproc_world world(1, 0, std::chrono::minutes(10));
    const auto comm = world.connect(0);
    lz::actors::rank_session session(spec, *comm, train, lz::bench::null_logger());
    session.backend().use_in_this_thread();
    session.init_weights();
    std::vector<double> times;
    double total_s = 0;
    int64_t tokens = 0;
    for (int s = 0; s < steps; s++) {
      const auto t0 = clock_type::now();
      const auto r = session.step(s);
      const double sec = std::chrono::duration<double>(clock_type::now() - t0).count();
      times.push_back(sec * 1e3);
      total_s += sec;
      tokens += r.tokens;
    }
    direct_ms_r.push_back(median(times));
    direct_tok_r.push_back(static_cast<double>(tokens) / total_s);
    const int64_t P = session.model().num_params();
    const std::string direct_sha =
        lz::engine::sha256_hex(session.model().params(), static_cast<size_t>(P) * 4);
    const run_figures run1 = trained(exe, dir + "/one", one);
    if (run1.sha != direct_sha) {
      std::fprintf(stderr, "runtime_bench: lazarus run ended with other weights than the direct "
                   "loop (%s vs %s)\n", run1.sha.c_str(), direct_sha.c_str());
      return 1;
    }
    run_ms_r.push_back(run1.median_step_ms);
    run_tok_r.push_back(run1.tokens_per_s);
    run_wall_r.push_back(run1.wall_tokens_per_s);
  }
  const double direct_ms = median(direct_ms_r), direct_tok_s = median(direct_tok_r);
  const double run_ms = median(run_ms_r), run_tok_s = median(run_tok_r);
  const double run_wall = median(run_wall_r);
  std::printf("%-34s %12s %12s %8s\n", "one rank, 2 threads", "lazarus run", "direct", "ratio");
  std::printf("%-34s %12.2f %12.2f %8.3f\n", "median step ms", run_ms, direct_ms,
              direct_ms / run_ms);
  std::printf("%-34s %12.0f %12.0f %8.3f\n", "tokens/s (step times)", run_tok_s, direct_tok_s,
              run_tok_s / direct_tok_s);
  std::printf("%-34s %12.0f %12.0f %8.3f\n", "tokens/s (wall clock, steps 1..N)", run_wall,
              direct_tok_s, run_wall / direct_tok_s);
  emit(json, lz::config::json_object().add("name", "control_plane_overhead")
                 .add("steps", int64_t{steps}).add("rounds", int64_t{3})
                 .add("run_median_step_ms", run_ms).add("direct_median_step_ms", direct_ms)
                 .add("run_tokens_per_s", run_tok_s).add("direct_tokens_per_s", direct_tok_s)
                 .add("run_wall_tokens_per_s", run_wall)
                 .add("ratio", run_tok_s / direct_tok_s)
                 .add("wall_ratio", run_wall / direct_tok_s));

  // 2. scaling: 1 against 2 ranks of one thread each
  const run_figures a = trained(exe, dir + "/w1", sets(data, steps, 1, 1));
  const run_figures b = trained(exe, dir + "/w2", sets(data, steps, 2, 1));
  if (a.sha != b.sha) {
    std::fprintf(stderr, "runtime_bench: 1 and 2 ranks disagree\n");
    return 1;
  }
  std::printf("\n%-8s %10s %12s %12s %12s\n", "ranks", "step ms", "tokens/s", "comm share",
              "data share");
  for (const auto& [w, f] : {std::pair{1, a}, std::pair{2, b}}) {
    std::printf("%-8d %10.2f %12.0f %12.3f %12.3f\n", w, f.median_step_ms, f.tokens_per_s,
                f.comm_share, f.data_share);
    emit(json, lz::config::json_object().add("name", "scaling").add("ranks", int64_t{w})
                   .add("threads_per_rank", int64_t{1}).add("median_step_ms", f.median_step_ms)
                   .add("tokens_per_s", f.tokens_per_s).add("comm_share", f.comm_share)
                   .add("data_wait_share", f.data_share)
                   .add("speedup_vs_one_rank", f.tokens_per_s / a.tokens_per_s));
  }

  // 3. startup and stop, five times each
  std::vector<double> to_first, to_gone;
  for (int round = 0; round < 5; round++) {
    const auto t0 = clock_type::now();
    child c = start_run(exe, dir + "/start", sets(data, 100000, 2, 1));
    if (!c.read_until("g0 step 1/", std::chrono::seconds(120))) {
      std::fprintf(stderr, "runtime_bench: no first step:\n%s\n", c.text.c_str());
      ::kill(c.pid, SIGKILL);
      return 1;
    }
    to_first.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - t0).count());
    const auto t1 = clock_type::now();
    ::kill(c.pid, SIGINT);
    const int code = c.wait();
    to_gone.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - t1).count());
    if (code != 128 + SIGINT) {
      std::fprintf(stderr, "runtime_bench: lazarus run exited %d after SIGINT\n", code);
      return 1;
    }
  }
  std::printf("\n%-40s %10.0f ms (median of 5)\n", "lazarus run to its first finished step",
              median(to_first));
  std::printf("%-40s %10.0f ms (median of 5)\n", "SIGINT to the last process gone", median(to_gone));
  emit(json, lz::config::json_object().add("name", "startup").add("ranks", int64_t{2})
                 .add("to_first_step_ms", median(to_first))
                 .add("sigint_to_exit_ms", median(to_gone)));
  std::filesystem::remove_all(dir);
  return 0;
}
