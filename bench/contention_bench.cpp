// contention_bench: a training step when another process holds one of the machine's cores.
//
//   contention_bench [--json] [--steps N]
//
// The small model (L4 C128 NH4, B4 T64, one slot) trains as one rank session with 2 threads:
// first on a quiet machine, then with a busy-looping child process competing for the cores.
// Reported: the quiet median, and the contended median and p99 as ratios to it (target: p99
// at most 3x the quiet median). Each OpenMP wait policy is measured in a child process of
// its own (libgomp reads OMP_WAIT_POLICY once, at start).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "bench/bench_support.hpp"
#include "actors/rank_session.hpp"
#include "config/json_writer.hpp"
#include "engine/inproc_communicator.hpp"
#include "engine/rng.hpp"
#include "engine/token_shard.hpp"

namespace {

using clock_type = std::chrono::steady_clock;

double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

// Step times (ms) of `steps` steps after two warm-up steps.
std::vector<double> time_steps(lz::actors::rank_session& s, int steps, int64_t& next) {
  std::vector<double> ms;
  for (int i = 0; i < steps + 2; i++) {
    const auto t0 = clock_type::now();
    s.step(next++);
    if (i >= 2) ms.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - t0).count());
  }
  return ms;
}

// A child process that busy-loops on one core once `start` is written to.
struct busy_child {
  pid_t pid = -1;
  int start = -1;
};

busy_child fork_busy_child() {  // before any thread exists in this process
  int fds[2];
  if (::pipe(fds) != 0) std::exit(1);
  const pid_t pid = ::fork();
  if (pid == 0) {
    char c = 0;
    ::close(fds[1]);
    if (::read(fds[0], &c, 1) != 1) std::_Exit(0);
    for (uint64_t i = 0;; ++i) asm volatile("" : : "r"(i));
  }
  ::close(fds[0]);
  return {pid, fds[1]};
}

int measure(int steps, bool json) {
  const busy_child busy = fork_busy_child();
  const std::string dir = (std::filesystem::temp_directory_path() /
                           ("lazarus-contention-" + std::to_string(::getpid()))).string();
  std::filesystem::create_directories(dir);
  lz::engine::splitmix64 rng(5);
  std::vector<uint16_t> tokens(static_cast<size_t>(4 * 64 * (2 * steps + 8) + 1));
  for (auto& t : tokens) t = static_cast<uint16_t>(rng.below(256));
  lz::engine::write_token_shard(dir + "/tokens.bin", tokens);
  const lz::engine::token_dataset data({dir + "/tokens.bin"}, 256);
  lz::config::run_spec spec;  // the embedded default's model: L4 C128 NH4
  spec.data.seq_len = 64;
  spec.data.micro_batch = 4;
  spec.data.slots = 1;
  spec.run.steps = 2 * steps + 8;
  auto log = lz::bench::null_logger();
  lz::engine::inproc_world world(1, 0, std::chrono::minutes(10));
  auto comm = world.connect(0);
  lz::actors::rank_session session(spec, *comm, data, log);
  session.backend().use_in_this_thread();
  session.init_weights();
  int64_t next = 0;
  const std::vector<double> quiet = time_steps(session, steps, next);
  if (::write(busy.start, "x", 1) != 1) std::exit(1);
  const std::vector<double> contended = time_steps(session, steps, next);
  ::kill(busy.pid, SIGKILL);
  ::waitpid(busy.pid, nullptr, 0);
  std::filesystem::remove_all(dir);
  const double q50 = quantile(quiet, 0.5), c50 = quantile(contended, 0.5);
  const double c99 = quantile(contended, 0.99);
  const char* policy = std::getenv("OMP_WAIT_POLICY");
  std::printf("%-8s %10.1f %12.1f %12.1f %10.2f %10.2f\n", policy ? policy : "default", q50, c50,
              c99, c50 / q50, c99 / q50);
  if (json) {
    std::printf("%s\n", lz::config::json_object()
                            .add("name", "contention").add("wait_policy", policy ? policy : "default")
                            .add("quiet_median_ms", q50).add("contended_median_ms", c50)
                            .add("contended_p99_ms", c99).add("median_ratio", c50 / q50)
                            .add("p99_ratio", c99 / q50).str().c_str());
  }
  std::fflush(stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  bool json = false;
  int steps = 40;
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    if (a == "--json") json = true;
    else if (a == "--steps" && i + 1 < argc) steps = std::atoi(argv[++i]);
    else if (a == "--child") return measure(steps, json);
    else {
      std::fprintf(stderr, "usage: contention_bench [--json] [--steps N]\n");
      return 2;
    }
  }
  std::printf("%-8s %10s %12s %12s %10s %10s\n", "policy", "quiet ms", "contended ms",
              "p99 ms", "median x", "p99 x");
  std::fflush(stdout);
  for (const char* policy : {"", "ACTIVE", "PASSIVE"}) {
    const pid_t child = ::fork();
    if (child == 0) {
      if (*policy != '\0') ::setenv("OMP_WAIT_POLICY", policy, 1);
      else ::unsetenv("OMP_WAIT_POLICY");
      const std::string n = std::to_string(steps);
      std::vector<const char*> args = {argv[0], "--steps", n.c_str(), "--child"};
      if (json) args.insert(args.begin() + 1, "--json");
      args.push_back(nullptr);
      ::execv("/proc/self/exe", const_cast<char* const*>(args.data()));
      std::_Exit(127);
    }
    int status = 0;
    ::waitpid(child, &status, 0);
  }
  return 0;
}
