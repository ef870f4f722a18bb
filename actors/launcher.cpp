// launcher.cpp: `lazarus run` (see launcher.hpp).
#include "actors/launcher.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "actors/process_util.hpp"
#include "config/error.hpp"
#include "engine/memory_estimate.hpp"

namespace lz::actors {

namespace {

using clock_type = std::chrono::steady_clock;

// Reads the coordinator's "HOST:PORT\n" from `fd`; "" when it exited first (it refused the
// start and said why) or said nothing within the timeout. A SIGINT or SIGTERM meanwhile
// goes on to the coordinator (which then ends before training).
std::string read_address(int fd, std::chrono::milliseconds timeout, const sigset_t& taken,
                         pid_t coordinator) {
  std::string text;
  const auto deadline = clock_type::now() + timeout;
  while (text.find('\n') == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
    if (left.count() <= 0) return "";
    timespec now{0, 0};
    if (const int sig = ::sigtimedwait(&taken, nullptr, &now); sig == SIGINT || sig == SIGTERM) {
      ::kill(coordinator, sig);
    }
    pollfd p{fd, POLLIN, 0};
    const int n = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 200)));
    if (n == 0) continue;
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return "";
    char buf[128];
    const ssize_t got = ::read(fd, buf, sizeof buf);
    if (got <= 0) return "";
    text.append(buf, static_cast<size_t>(got));
  }
  return text.substr(0, text.find('\n'));
}

}  // namespace

int run_launcher(const config::run_spec& spec, const launch_options& options) {
  // One check that needs the whole world on this machine: memory.
  if (const uint64_t memory = engine::physical_memory_bytes(); memory > 0) {
    engine::require_memory_fits(spec, memory);
  }
  const int64_t nodes = spec.parallel.nodes, ranks = spec.parallel.ranks;
  if (const unsigned cores = std::thread::hardware_concurrency();
      cores > 0 && ranks * spec.parallel.threads_per_rank > cores) {
    std::fprintf(stderr, "lazarus: warning: parallel.ranks x parallel.threads_per_rank = %lld x "
                 "%lld threads on %u cores: ranks will wait for each other's descheduled "
                 "threads; lower threads_per_rank\n", static_cast<long long>(ranks),
                 static_cast<long long>(spec.parallel.threads_per_rank), cores);
  }
  // SIGINT and SIGTERM are taken here with sigtimedwait, never by a handler.
  sigset_t taken;
  sigemptyset(&taken);
  sigaddset(&taken, SIGINT);
  sigaddset(&taken, SIGTERM);
  sigaddset(&taken, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &taken, nullptr);

  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) LZ_THROW(io_error, "pipe: {}", std::strerror(errno));
  std::vector<std::string> args{"coordinator"};
  args.insert(args.end(), options.spec_args.begin(), options.spec_args.end());
  args.insert(args.end(), {"--state-dir", options.state_dir, "--listen", "127.0.0.1:0",
                           "--ready-fd", std::to_string(ready[1])});
  if (!options.progress) args.push_back("--no-progress");
  if (options.start_over) args.push_back("--start-over");
  const pid_t coordinator = spawn_self(args, {.pgroup = 0, .keep_fds = {ready[1]}});
  const pid_t group = coordinator;
  ::close(ready[1]);
  std::map<pid_t, std::string> children{{coordinator, "coordinator"}};
  const std::string address = read_address(ready[0], std::chrono::minutes(5), taken, coordinator);
  ::close(ready[0]);
  if (!address.empty()) {
    for (int64_t i = 0; i < nodes; i++) {
      const int64_t slots = ranks / nodes + (i < ranks % nodes ? 1 : 0);
      const pid_t pid = spawn_self({"node", "--join", address, "--slots", std::to_string(slots),
                                    "--name", fmt::format("node{}", i)},
                                   {.pgroup = group});
      children[pid] = fmt::format("node{}", i);
    }
  }

  // Wait for the coordinator; pass the first signal on, end everything at the second.
  int coordinator_code = 1, signals = 0, last_signal = 0;
  auto nodes_deadline = clock_type::time_point::max();
  while (!children.empty()) {
    int status = 0;
    for (pid_t pid; (pid = ::waitpid(-1, &status, WNOHANG)) > 0;) {
      if (pid == coordinator) {
        coordinator_code = exit_code_of(status);
        nodes_deadline = clock_type::now() + std::chrono::seconds(15);
      }
      children.erase(pid);
    }
    if (children.empty()) break;
    if (clock_type::now() > nodes_deadline) {  // node agents outlived the run: end them
      std::fprintf(stderr, "lazarus: node agents still running 15 s after the coordinator "
                   "ended: killing them\n");
      ::killpg(group, SIGKILL);
      nodes_deadline = clock_type::time_point::max();
    }
    timespec wait{0, 200 * 1000 * 1000};  // also wakes on SIGCHLD
    const int sig = ::sigtimedwait(&taken, nullptr, &wait);
    if (sig != SIGINT && sig != SIGTERM) continue;
    last_signal = sig;
    if (++signals == 1 && children.count(coordinator) != 0) {
      std::fprintf(stderr, "\nlazarus: signal %d: the run stops after saving the current "
                   "step; a second signal ends it at once\n", sig);
      ::kill(coordinator, sig);
    } else {
      std::fprintf(stderr, "\nlazarus: signal %d again: ending every process of the run\n", sig);
      ::killpg(group, SIGKILL);
    }
  }
  return signals >= 2 ? 128 + last_signal : coordinator_code;
}

}  // namespace lz::actors
