// world_bench: what the exact reduction costs. Rank sessions (the object `lazarus run`
// drives) train on threads of this process over the in-process communicator; for each
// model and world size the median step time with reduction = "exact" is set against "fast"
// (the communicator's own all-reduce) measured in the same run, and the exact sum's extra
// gradient buffers are reported against the parameter bytes, with the peak RSS of each run
// (every run is a child process of its own).
//
//   world_bench [--json] [--steps N] [--rounds N] [--config NAME] [--slots N]
//
// Before timing, every configuration checks that all ranks hold the same weights, and that
// exact at 2 ranks equals exact at 1 rank bit for bit.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

#include "bench/bench_support.hpp"
#include "actors/rank_session.hpp"
#include "config/json_writer.hpp"
#include "engine/digest.hpp"
#include "engine/inproc_communicator.hpp"
#include "engine/rng.hpp"
#include "engine/token_shard.hpp"

namespace {

using clock_type = std::chrono::steady_clock;

using lz::bench::median;

struct bench_config {
  std::string name;
  int64_t layers, heads, channels, vocab, B, T;
};

struct world_result {
  double step_ms = 0.0;
  std::string sha;
  int64_t extra_gradient_buffers = 0;  // exact: full-length buffers held by rank 0's step
  int64_t params = 0;
  int64_t peak_rss_bytes = 0;          // of the process that ran it (a child of its own)
};

// Trains `steps` + 2 steps (two warm-up) on `world` rank sessions; the median step time of
// rank 0 after warm-up.
world_result run_world(const bench_config& c, int world, const std::string& reduction,
                       int64_t slots, int steps, const lz::engine::token_dataset& data) {
  lz::config::run_spec spec = lz::bench::spec_for_model(
      {.max_seq_len = c.T, .vocab_size = c.vocab, .padded_vocab_size = 0, .layers = c.layers,
       .heads = c.heads, .channels = c.channels}, c.B, c.T, slots, steps + 2);
  spec.parallel.ranks = world;
  spec.parallel.threads_per_rank = std::max(1, 2 / world);  // the machine's 2 cores, shared
  spec.parallel.reduction = reduction;
  auto log = lz::bench::null_logger();
  lz::engine::inproc_world w(world, 0, std::chrono::minutes(10));
  std::vector<std::unique_ptr<lz::engine::communicator>> comms;
  std::vector<std::unique_ptr<lz::actors::rank_session>> sessions;
  for (int r = 0; r < world; r++) {
    comms.push_back(w.connect(r));
    sessions.push_back(std::make_unique<lz::actors::rank_session>(spec, *comms.back(), data, log));
  }
  std::vector<double> times;
  std::vector<std::thread> threads;
  for (auto& s : sessions) {
    threads.emplace_back([&, session = s.get()] {
      session->backend().use_in_this_thread();
      session->init_weights();
      for (int step = 0; step < steps + 2; step++) {
        const auto t0 = clock_type::now();
        const auto r = session->step(step);
        if (r.discarded) std::fprintf(stderr, "world_bench: step %d discarded: %s\n", step, r.why.c_str());
        if (session->rank() == 0 && step >= 2) {
          times.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - t0).count());
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  world_result out;
  out.step_ms = median(times);
  out.params = sessions.front()->model().num_params();
  out.sha = lz::engine::sha256_hex(sessions.front()->model().params(),
                                   static_cast<size_t>(out.params) * sizeof(float));
  for (auto& s : sessions) {
    const std::string sha = lz::engine::sha256_hex(s->model().params(),
                                                   static_cast<size_t>(out.params) * sizeof(float));
    if (sha != out.sha) {
      std::fprintf(stderr, "world_bench: rank %d disagrees with rank 0\n", s->rank());
      std::exit(1);
    }
  }
  out.extra_gradient_buffers = sessions.front()->gradient_buffers();
  return out;
}

// run_world() in a child process of its own, so that its peak RSS is its own (and this
// process never starts an OpenMP pool that a fork would break).
world_result run_world_in_child(const bench_config& c, int world, const std::string& reduction,
                                int64_t slots, int steps, const lz::engine::token_dataset& data) {
  int fds[2];
  if (::pipe(fds) != 0) std::exit(1);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    const world_result r = run_world(c, world, reduction, slots, steps, data);
    const std::string line = fmt::format("{} {} {} {}\n", r.step_ms, r.sha,
                                         r.extra_gradient_buffers, r.params);
    const bool ok = ::write(fds[1], line.data(), line.size()) == static_cast<ssize_t>(line.size());
    std::_Exit(ok ? 0 : 1);
  }
  ::close(fds[1]);
  std::string text;
  char buf[256];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) text.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  int status = 0;
  rusage usage{};
  ::wait4(pid, &status, 0, &usage);
  world_result r;
  char sha[65] = {};
  long long buffers = 0, params = 0;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
      std::sscanf(text.c_str(), "%lf %64s %lld %lld", &r.step_ms, sha, &buffers, &params) != 4) {
    std::fprintf(stderr, "world_bench: the run of %s at %d ranks (%s) failed\n", c.name.c_str(),
                 world, reduction.c_str());
    std::exit(1);
  }
  r.sha = sha;
  r.extra_gradient_buffers = buffers;
  r.params = params;
  r.peak_rss_bytes = static_cast<int64_t>(usage.ru_maxrss) * 1024;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  bool json = false;
  int steps = 5, rounds = 1;
  int64_t slots = 2;
  std::string only;
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    if (a == "--json") json = true;
    else if (a == "--steps" && i + 1 < argc) steps = std::atoi(argv[++i]);
    else if (a == "--slots" && i + 1 < argc) slots = std::atoll(argv[++i]);
    else if (a == "--rounds" && i + 1 < argc) rounds = std::max(1, std::atoi(argv[++i]));
    else if (a == "--config" && i + 1 < argc) only = argv[++i];
    else {
      std::fprintf(stderr, "usage: world_bench [--json] [--steps N] [--rounds N] [--config NAME] [--slots N]\n");
      return 2;
    }
  }
  const std::vector<bench_config> configs = {
      {"small-L4", 4, 4, 128, 256, 4, 64},
      {"bytes-L6", 6, 6, 384, 256, 4, 256},
      {"gpt2-124M", 12, 12, 768, 50257, 4, 64},
  };
  const std::string dir = (std::filesystem::temp_directory_path() / "lazarus-world-bench").string();
  std::filesystem::create_directories(dir);
  std::printf("%-10s %5s %6s %12s %12s %11s %18s %14s %14s\n", "config", "slots", "ranks",
              "exact ms", "fast ms", "exact/fast", "exact grad buffers", "exact peak MiB",
              "fast peak MiB");
  for (const bench_config& c : configs) {
    if (!only.empty() && c.name != only) continue;
    if (only.empty() && c.name == "gpt2-124M") continue;  // minutes on 2 cores: ask for it
    lz::engine::splitmix64 rng(3);
    std::vector<uint16_t> tokens(static_cast<size_t>((steps + 4) * slots * c.B * c.T + 1) * 4);
    for (auto& t : tokens) t = static_cast<uint16_t>(rng.below(static_cast<uint64_t>(c.vocab)));
    const std::string shard = dir + "/" + c.name + ".bin";
    lz::engine::write_token_shard(shard, tokens);
    const lz::engine::token_dataset data({shard}, c.vocab);
    std::string exact_at_one;
    for (int world : {1, 2}) {
      // exact and fast alternate `rounds` times; each figure is the median over rounds of
      // the rounds' median step times, so that drift on a shared machine hits both alike
      world_result exact, fast;
      std::vector<double> exact_ms, fast_ms;
      for (int round = 0; round < rounds; round++) {
        exact = run_world_in_child(c, world, "exact", slots, steps, data);
        fast = run_world_in_child(c, world, "fast", slots, steps, data);
        exact_ms.push_back(exact.step_ms);
        fast_ms.push_back(fast.step_ms);
      }
      exact.step_ms = median(exact_ms);
      fast.step_ms = median(fast_ms);
      if (world == 1) exact_at_one = exact.sha;
      if (exact.sha != exact_at_one) {
        std::fprintf(stderr, "world_bench: %s exact at %d ranks differs from 1 rank\n",
                     c.name.c_str(), world);
        return 1;
      }
      const double ratio = fast.step_ms / exact.step_ms;  // exact's speed as a fraction of fast's
      std::printf("%-10s %5lld %6d %12.1f %12.1f %11.3f %9lld x %4.0f MiB %14.0f %14.0f\n",
                  c.name.c_str(), static_cast<long long>(slots), world, exact.step_ms,
                  fast.step_ms, ratio, static_cast<long long>(exact.extra_gradient_buffers),
                  static_cast<double>(exact.params) * 4 / (1 << 20),
                  static_cast<double>(exact.peak_rss_bytes) / (1 << 20),
                  static_cast<double>(fast.peak_rss_bytes) / (1 << 20));
      if (json) {
        std::printf("%s\n", lz::config::json_object()
                                .add("name", "exact_vs_fast").add("config", c.name)
                                .add("slots", slots).add("ranks", int64_t{world})
                                .add("rounds", int64_t{rounds}).add("steps", int64_t{steps})
                                .add("exact_step_ms", exact.step_ms)
                                .add("fast_step_ms", fast.step_ms)
                                .add("exact_speed_ratio", ratio)
                                .add("exact_gradient_buffers", exact.extra_gradient_buffers)
                                .add("param_bytes", exact.params * 4)
                                .add("exact_peak_rss_bytes", exact.peak_rss_bytes)
                                .add("fast_peak_rss_bytes", fast.peak_rss_bytes)
                                .str().c_str());
      }
      std::fflush(stdout);
    }
  }
  std::filesystem::remove_all(dir);
  return 0;
}
