// process_support.hpp: `lazarus` processes started by a test the way a cluster starts them:
// in the background, watched through a pidfd, their output read as it comes, and the
// processes of a run found by an environment tag they all inherit.
#pragma once

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

extern char** environ;

namespace lz::test {

// A `lazarus ARGS` child; its stdout and stderr go to a pipe that read_until() reads. The
// destructor kills it (and waits) if it is still running.
class lazarus_process {
public:
  // `env` is added to this process's environment; `keep_fd` (when >= 0) stays open in the
  // child.
  lazarus_process(const std::vector<std::string>& args, std::vector<std::string> env,
                  int keep_fd = -1) {
    for (char** e = environ; *e != nullptr; ++e) {
      if (std::strncmp(*e, "LAZARUS_FAULT=", 14) != 0) env.emplace_back(*e);
    }
    std::vector<char*> envp;
    for (auto& v : env) envp.push_back(v.data());
    envp.push_back(nullptr);
    std::vector<std::string> argv_s{LZ_EXE};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_adddup2(&actions, out[1], 2);
    if (keep_fd >= 0) {  // dup2 onto itself clears FD_CLOEXEC in the child
      posix_spawn_file_actions_adddup2(&actions, keep_fd, keep_fd);
    }
    const int rc = ::posix_spawn(&pid_, LZ_EXE, &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    out_ = out[0];
    if (rc != 0) throw std::runtime_error(std::string("posix_spawn: ") + std::strerror(rc));
    pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
  }
  ~lazarus_process() {
    if (running()) {
      ::kill(pid_, SIGKILL);
      wait(std::chrono::seconds(10));
    }
    if (out_ >= 0) ::close(out_);
    if (pidfd_ >= 0) ::close(pidfd_);
  }
  lazarus_process(const lazarus_process&) = delete;
  lazarus_process& operator=(const lazarus_process&) = delete;

  pid_t pid() const { return pid_; }
  bool running() const { return status_ < 0; }
  const std::string& output() const { return output_; }

  // Reads output until it contains `text` (true) or the process closed its output or
  // `timeout` passed (false).
  bool read_until(const std::string& text, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (output_.find(text) == std::string::npos) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0 || !read_some(left)) return false;
    }
    return true;
  }

  // Waits for the exit (reading what is left of the output); the exit code, 128 + signal
  // for a killed process, or -1 after `timeout` (then it is killed).
  int wait(std::chrono::milliseconds timeout) {
    if (!running()) return code_;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      pollfd p{pidfd_, POLLIN, 0};
      if (::poll(&p, 1, 0) == 1) break;
      if (left.count() <= 0) {
        ADD_FAILURE() << "lazarus (pid " << pid_ << ") did not exit within " << timeout.count()
                      << " ms: killed\n" << output_;
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status_, 0);
        return code_ = -1;
      }
      if (!read_some(std::min(left, std::chrono::milliseconds(200)))) {
        ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 200)));  // output closed
      }
    }
    ::waitpid(pid_, &status_, 0);
    while (read_some(std::chrono::milliseconds(0))) {
    }
    code_ = WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
    return code_;
  }

private:
  // One read of whatever is there within `timeout`; false at end of output or timeout.
  bool read_some(std::chrono::milliseconds timeout) {
    if (out_ < 0) return false;
    pollfd p{out_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return false;
    char buf[4096];
    const ssize_t n = ::read(out_, buf, sizeof buf);
    if (n <= 0) {
      ::close(out_);
      out_ = -1;
      return false;
    }
    output_.append(buf, static_cast<size_t>(n));
    return true;
  }

  pid_t pid_ = -1;
  int pidfd_ = -1;
  int out_ = -1;
  int status_ = -1;
  int code_ = -1;
  std::string output_;
};

// `lazarus coordinator ARGS --listen 127.0.0.1:0` in the background, and the address it
// listens on (empty when it exited first: its output says why).
struct started_coordinator {
  std::unique_ptr<lazarus_process> process;
  std::string address;
};
inline started_coordinator start_coordinator(std::vector<std::string> args,
                                             std::vector<std::string> env) {
  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
  args.insert(args.begin(), "coordinator");
  args.insert(args.end(), {"--listen", "127.0.0.1:0", "--ready-fd", std::to_string(ready[1])});
  started_coordinator out;
  out.process = std::make_unique<lazarus_process>(args, std::move(env), ready[1]);
  ::close(ready[1]);
  char c = 0;
  while (::read(ready[0], &c, 1) == 1 && c != '\n') out.address += c;  // EOF if it exits first
  ::close(ready[0]);
  return out;
}

// A coordinator (ARGS as for start_coordinator) and two node agents of `slots` slots each,
// "alpha" and "beta", started in that order; no agents when the coordinator exited first.
struct two_node_cluster {
  started_coordinator started;
  std::unique_ptr<lazarus_process> alpha, beta;
  lazarus_process& coordinator() { return *started.process; }
  const std::string& address() const { return started.address; }
};
inline two_node_cluster start_two_nodes(std::vector<std::string> args, int slots,
                                        const std::vector<std::string>& env = {}) {
  two_node_cluster out{start_coordinator(std::move(args), env), nullptr, nullptr};
  if (out.started.address.empty()) return out;
  const auto agent = [&](const char* name) {
    return std::make_unique<lazarus_process>(
        std::vector<std::string>{"node", "--join", out.started.address, "--slots",
                                 std::to_string(slots), "--name", name},
        env);
  };
  out.alpha = agent("alpha");
  out.beta = agent("beta");
  return out;
}

// Processes whose environment holds `tag` (e.g. "LAZARUS_TEST_TAG=abc"): what a run started
// and left behind.
inline std::set<pid_t> tagged_processes(const std::string& tag) {
  std::set<pid_t> out;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(e.path() / "environ", std::ios::binary);
    const std::string env((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (env.find(tag + '\0') != std::string::npos) out.insert(static_cast<pid_t>(std::stol(name)));
  }
  return out;
}

// Waits (through pidfds, at most `timeout`) until none of `pids` is alive; the ones left.
inline std::set<pid_t> wait_gone(const std::set<pid_t>& pids, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::set<pid_t> left;
  for (pid_t pid : pids) {
    const int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (fd < 0) continue;  // already gone
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(std::max<int64_t>(ms.count(), 0))) != 1) left.insert(pid);
    ::close(fd);
  }
  return left;
}

}  // namespace lz::test
