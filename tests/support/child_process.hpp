// child_process.hpp: running one test of this binary again in a child process (for faults
// armed by environment variables, which the fault hook reads once per process).
#pragma once

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

extern char** environ;

namespace lz::test {

// Runs this test binary with --gtest_filter=`filter` and `env` added to this process's
// environment (its GTEST_* and LAZARUS_FAULT variables left out), stdout and stderr to
// `log_path`. Waits for the child's exit event (pidfd + poll) for at most `timeout`, then
// kills it. Returns the wait status, or -1 after a failure it has reported: the child did
// not finish in time, did not run `filter` (a filter matching no test), or exited 0
// without passing it (a skipped test).
inline int run_self(const std::string& filter, std::vector<std::string> env,
                    const std::string& log_path,
                    std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
  const std::string exe = std::filesystem::read_symlink("/proc/self/exe").string();
  const std::string filter_arg = "--gtest_filter=" + filter;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string var = *e;
    if (var.rfind("GTEST_", 0) != 0 && var.rfind("LAZARUS_FAULT=", 0) != 0) env.push_back(var);
  }
  std::vector<char*> envp;
  for (std::string& var : env) envp.push_back(var.data());
  envp.push_back(nullptr);
  char* argv[] = {const_cast<char*>(exe.c_str()), const_cast<char*>(filter_arg.c_str()), nullptr};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = 0;
  const int rc = ::posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv, envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    ADD_FAILURE() << "posix_spawn " << exe << ": " << std::strerror(rc);
    return -1;
  }
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    ADD_FAILURE() << "pidfd_open: " << std::strerror(errno);
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return -1;
  }
  pollfd p{pidfd, POLLIN, 0};
  const int ready = ::poll(&p, 1, static_cast<int>(timeout.count()));
  ::close(pidfd);
  int status = 0;
  if (ready != 1) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    ADD_FAILURE() << "the child test " << filter << " did not finish within "
                  << timeout.count() << " ms: killed";
    return -1;
  }
  ::waitpid(pid, &status, 0);
  // The child must prove it ran the test asked for: a filter that matches nothing (after a
  // rename) or a skipped test also exits 0.
  std::string log;
  if (FILE* f = std::fopen(log_path.c_str(), "r")) {
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof(buf), f)) > 0;) log.append(buf, n);
    std::fclose(f);
  }
  if (log.find("[ RUN      ] " + filter) == std::string::npos) {
    ADD_FAILURE() << "the child did not run " << filter << " (no test matched the filter):\n"
                  << log;
    return -1;
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
      log.find("[       OK ] " + filter) == std::string::npos) {
    ADD_FAILURE() << "the child exited 0 without passing " << filter << " (skipped?):\n" << log;
    return -1;
  }
  return status;
}

inline bool killed_by_sigkill(int status) {
  return status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

}  // namespace lz::test
