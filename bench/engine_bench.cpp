// engine_bench: training-step throughput of the CPU engine against a GEMM ceiling measured
// in the same process.
//
//   engine_bench [--json] [--steps N] [--threads N] [--config NAME]
//
// For each model config: the median time of a full optimizer step (forward, backward, global
// norm, AdamW) over random tokens, its model FLOP rate, and that rate as a fraction of a
// 2048^3 fp32 GEMM through the same oneDNN. Model FLOPs per token follow PaLM (appendix B):
// 6 x parameters + 12 x L x C x T (forward and backward, attention without a causal
// discount). Peak memory is the process's peak RSS after the config ran.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "actors/rank_session.hpp"
#include "bench/bench_support.hpp"
#include "config/json_writer.hpp"
#include "engine/dataset.hpp"
#include "engine/gpt2.hpp"
#include "engine/rng.hpp"
#include "engine/inproc_communicator.hpp"
#include "kernels/cpu/matmul.hpp"

namespace {

using clock_type = std::chrono::steady_clock;

using lz::bench::median;

int64_t peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<int64_t>(u.ru_maxrss) * 1024;
}

// GFLOP/s of c = a . b for n x n x n through oneDNN, checked against a few dot products.
double gemm_ceiling_gflops(int64_t n) {
  lz::kernels::cpu::onednn_matmul gemm;
  std::vector<float> a(static_cast<size_t>(n * n)), b(a.size()), c(a.size());
  lz::engine::splitmix64 rng(1);
  for (auto& x : a) x = static_cast<float>(rng.uniform() - 0.5);
  for (auto& x : b) x = static_cast<float>(rng.uniform() - 0.5);
  std::vector<double> times;
  for (int rep = 0; rep < 7; rep++) {
    const auto t0 = clock_type::now();
    gemm.run(c.data(), {a.data(), n, 1}, {b.data(), n, 1}, nullptr, n, n, n, false);
    times.push_back(std::chrono::duration<double>(clock_type::now() - t0).count());
  }
  for (int64_t probe : {int64_t{0}, n / 3, n - 1}) {
    double want = 0;
    for (int64_t k = 0; k < n; k++) want += static_cast<double>(a[probe * n + k]) * b[k * n + probe];
    if (std::abs(want - c[probe * n + probe]) > 1e-3 * (1 + std::abs(want))) {
      std::fprintf(stderr, "engine_bench: GEMM check failed at %lld\n", static_cast<long long>(probe));
      std::exit(1);
    }
  }
  times.erase(times.begin());  // the first call pays for the JIT
  return 2.0 * static_cast<double>(n * n * n) / median(times) / 1e9;
}

struct bench_config {
  const char* name;
  lz::engine::gpt2_config model;
  int64_t B, T;
};

struct bench_result {
  double ms_per_step = 0, tokens_per_s = 0, model_gflops = 0, loss_first = 0, loss_last = 0;
  int64_t peak_rss = 0;
  int64_t params = 0;
};

bench_result run_config(const bench_config& cfg, int steps, int threads,
                        const std::string& shard_dir) {
  // random tokens, enough windows for every step
  const std::string shard = shard_dir + "/" + cfg.name + ".bin";
  lz::bench::write_random_tokens(shard, (steps + 3) * cfg.B * cfg.T + 1, cfg.model.vocab_size, 2);
  const lz::engine::token_dataset data({shard}, cfg.model.vocab_size);
  // one rank session, the object `lazarus run` drives
  lz::config::run_spec spec = lz::bench::spec_for_model(cfg.model, cfg.B, cfg.T, 1, steps + 2);
  spec.run.seed = 3;
  spec.optimizer.lr = 1e-4;
  spec.optimizer.warmup_steps = 0;
  spec.parallel.threads_per_rank = threads;
  const auto log = lz::bench::null_logger();
  lz::engine::inproc_world world(1, 0, std::chrono::minutes(10));
  const auto comm = world.connect(0);
  lz::actors::rank_session session(spec, *comm, data, log);
  session.backend().use_in_this_thread();
  session.init_weights();
  lz::engine::gpt2& model = session.model();
  bench_result r;
  r.params = model.num_params();
  std::vector<double> times;
  for (int s = 0; s < steps + 2; s++) {  // two warm-up steps
    const auto t0 = clock_type::now();
    const auto res = session.step(s);
    const double dt = std::chrono::duration<double>(clock_type::now() - t0).count();
    if (s >= 2) times.push_back(dt);
    if (s == 0) r.loss_first = res.loss;
    r.loss_last = res.loss;
  }
  const double sec = median(times);
  const double step_tokens = static_cast<double>(cfg.B * cfg.T);
  const double flops_per_token = 6.0 * static_cast<double>(model.num_params()) +
                                 12.0 * static_cast<double>(cfg.model.layers * cfg.model.channels * cfg.T);
  r.ms_per_step = sec * 1e3;
  r.tokens_per_s = step_tokens / sec;
  r.model_gflops = flops_per_token * step_tokens / sec / 1e9;
  r.peak_rss = peak_rss_bytes();
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  bool json = false;
  int steps = 5, threads = 2;
  std::string only;
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    if (a == "--json") json = true;
    else if (a == "--steps" && i + 1 < argc) steps = std::atoi(argv[++i]);
    else if (a == "--threads" && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (a == "--config" && i + 1 < argc) only = argv[++i];
    else {
      std::fprintf(stderr, "usage: engine_bench [--json] [--steps N] [--threads N] [--config NAME]\n");
      return 2;
    }
  }
  const std::vector<bench_config> configs{
      {"bytes-L6", {256, 256, 256, 6, 6, 384}, 4, 256},
      {"gpt2-124M", {1024, 50257, 50304, 12, 12, 768}, 4, 64},
  };
  const std::string shard_dir = std::filesystem::temp_directory_path() / "lazarus-engine-bench";
  std::filesystem::create_directories(shard_dir);

  lz::kernels::make_cpu_backend(threads);  // sets the OpenMP pool for the ceiling too
  const double ceiling = gemm_ceiling_gflops(2048);
  std::printf("fp32 GEMM ceiling (oneDNN, 2048^3, %d threads): %.1f GFLOP/s\n\n", threads, ceiling);
  std::printf("%-10s %10s %8s %10s %12s %11s %7s %10s %14s\n", "config", "params", "B x T",
              "ms/step", "tokens/s", "model GF/s", "ratio", "peak MiB", "loss first/last");
  for (const auto& cfg : configs) {
    if (!only.empty() && only != cfg.name) continue;
    const bench_result r = run_config(cfg, steps, threads, shard_dir);
    std::printf("%-10s %10lld %3lldx%-4lld %10.1f %12.0f %11.1f %7.3f %10.0f %6.3f/%-6.3f\n",
                cfg.name, static_cast<long long>(r.params), static_cast<long long>(cfg.B),
                static_cast<long long>(cfg.T), r.ms_per_step, r.tokens_per_s, r.model_gflops,
                r.model_gflops / ceiling, static_cast<double>(r.peak_rss) / (1 << 20),
                r.loss_first, r.loss_last);
    if (json) {
      lz::config::json_object o;
      o.add("name", cfg.name).add("ms_per_step", r.ms_per_step).add("tokens_per_s", r.tokens_per_s)
          .add("model_gflops", r.model_gflops).add("gemm_ceiling_gflops", ceiling)
          .add("ratio", r.model_gflops / ceiling).add("peak_rss_bytes", r.peak_rss)
          .add("params", r.params).add("threads", threads).add("steps", int64_t{steps});
      std::printf("%s\n", o.str().c_str());
    }
    std::fflush(stdout);
  }
  std::filesystem::remove_all(shard_dir);
  return 0;
}
