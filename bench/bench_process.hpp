// bench_process.hpp: `lazarus` processes started by a benchmark, their output read as it
// comes (each chunk stamped with the benchmark's clock), and the small readers of the files
// a run writes.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

extern char** environ;

namespace lz::bench {

using clock_type = std::chrono::steady_clock;

inline std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The number after "KEY": in a JSON line; -1 when it is not there.
inline double json_number(const std::string& line, const std::string& key) {
  const std::string q = "\"" + key + "\":";
  const size_t at = line.find(q);
  return at == std::string::npos ? -1.0 : std::atof(line.c_str() + at + q.size());
}

// A `lazarus` child whose stdout and stderr this process reads.
struct child {
  pid_t pid = -1;
  int out = -1;
  std::string text;

  // Reads what is there within `timeout_ms`; false at the end of the output.
  bool read_some(int timeout_ms) {
    if (out < 0) return false;
    pollfd p{out, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) != 1) return true;
    char buf[4096];
    const ssize_t n = ::read(out, buf, sizeof buf);
    if (n <= 0) {
      ::close(out);
      out = -1;
      return false;
    }
    text.append(buf, static_cast<size_t>(n));
    return true;
  }
  // Reads until the output holds `what` after offset `from` (true), it ends, or the timeout.
  bool read_until(const std::string& what, std::chrono::milliseconds timeout, size_t from = 0) {
    const auto deadline = clock_type::now() + timeout;
    while (text.find(what, from) == std::string::npos && clock_type::now() < deadline) {
      if (!read_some(20)) break;
    }
    return text.find(what, from) != std::string::npos;
  }
  int wait() {
    while (read_some(1000)) {
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
};

// Starts `exe ARGS`; `keep_fd` (when >= 0) stays open in the child.
inline child spawn_lazarus(const std::string& exe, std::vector<std::string> args, int keep_fd = -1) {
  args.insert(args.begin(), exe);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) std::exit(1);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 2);
  if (keep_fd >= 0) posix_spawn_file_actions_adddup2(&actions, keep_fd, keep_fd);
  child c;
  if (::posix_spawn(&c.pid, exe.c_str(), &actions, nullptr, argv.data(), environ) != 0) {
    std::fprintf(stderr, "cannot start %s\n", exe.c_str());
    std::exit(1);
  }
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  c.out = fds[0];
  return c;
}

}  // namespace lz::bench
