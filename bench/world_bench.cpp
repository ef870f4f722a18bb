// world_bench: what the exact reduction costs. Rank sessions (the object `lazarus run`
// drives) train on threads of this process over the in-process communicator; for each
// model and world size the median step time with reduction = "exact" is set against "fast"
// (the communicator's own all-reduce) measured in the same run, and the exact sum's extra
// gradient buffers are reported against the parameter bytes.
//
//   world_bench [--json] [--steps N] [--config NAME] [--slots N]
//
// Before timing, every configuration checks that all ranks hold the same weights, and that
// exact at 2 ranks equals exact at 1 rank bit for bit.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include "actors/rank_session.hpp"
#include "config/json_writer.hpp"
#include "engine/digest.hpp"
#include "engine/inproc_communicator.hpp"
#include "engine/rng.hpp"
#include "engine/token_shard.hpp"

namespace {

using clock_type = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct bench_config {
  std::string name;
  int64_t layers, heads, channels, vocab, B, T;
};

struct world_result {
  double step_ms = 0.0;
  std::string sha;
  int64_t extra_gradient_buffers = 0;  // exact: full-length buffers held by rank 0's step
  int64_t params = 0;
};

// Trains `steps` + 2 steps (two warm-up) on `world` rank sessions; the median step time of
// rank 0 after warm-up.
world_result run_world(const bench_config& c, int world, const std::string& reduction,
                       int64_t slots, int steps, const lz::engine::token_dataset& data) {
  lz::config::run_spec spec;
  spec.model.layers = c.layers;
  spec.model.heads = c.heads;
  spec.model.channels = c.channels;
  spec.model.vocab_size = c.vocab;
  spec.model.max_seq_len = c.T;
  spec.data.seq_len = c.T;
  spec.data.micro_batch = c.B;
  spec.data.slots = slots;
  spec.run.steps = steps + 2;
  spec.parallel.ranks = world;
  spec.parallel.threads_per_rank = std::max(1, 2 / world);  // the machine's 2 cores, shared
  spec.parallel.reduction = reduction;
  auto log = std::make_shared<spdlog::logger>("bench", std::make_shared<spdlog::sinks::null_sink_mt>());
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

}  // namespace

int main(int argc, char** argv) {
  bool json = false;
  int steps = 5;
  int64_t slots = 2;
  std::string only;
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    if (a == "--json") json = true;
    else if (a == "--steps" && i + 1 < argc) steps = std::atoi(argv[++i]);
    else if (a == "--slots" && i + 1 < argc) slots = std::atoll(argv[++i]);
    else if (a == "--config" && i + 1 < argc) only = argv[++i];
    else {
      std::fprintf(stderr, "usage: world_bench [--json] [--steps N] [--config NAME] [--slots N]\n");
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
  std::printf("%-10s %5s %6s %12s %12s %11s %18s\n", "config", "slots", "ranks", "exact ms",
              "fast ms", "exact/fast", "exact grad buffers");
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
      const world_result exact = run_world(c, world, "exact", slots, steps, data);
      const world_result fast = run_world(c, world, "fast", slots, steps, data);
      if (world == 1) exact_at_one = exact.sha;
      if (exact.sha != exact_at_one) {
        std::fprintf(stderr, "world_bench: %s exact at %d ranks differs from 1 rank\n",
                     c.name.c_str(), world);
        return 1;
      }
      const double ratio = fast.step_ms / exact.step_ms;  // exact's speed as a fraction of fast's
      std::printf("%-10s %5lld %6d %12.1f %12.1f %11.3f %9lld x %.0f MiB\n", c.name.c_str(),
                  static_cast<long long>(slots), world, exact.step_ms, fast.step_ms, ratio,
                  static_cast<long long>(exact.extra_gradient_buffers),
                  static_cast<double>(exact.params) * 4 / (1 << 20));
      if (json) {
        std::printf("%s\n", lz::config::json_object()
                                .add("name", "exact_vs_fast").add("config", c.name)
                                .add("slots", slots).add("ranks", int64_t{world})
                                .add("exact_step_ms", exact.step_ms)
                                .add("fast_step_ms", fast.step_ms)
                                .add("exact_speed_ratio", ratio)
                                .add("exact_gradient_buffers", exact.extra_gradient_buffers)
                                .add("param_bytes", exact.params * 4)
                                .str().c_str());
      }
      std::fflush(stdout);
    }
  }
  std::filesystem::remove_all(dir);
  return 0;
}
