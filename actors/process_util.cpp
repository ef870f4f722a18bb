// process_util.cpp: see process_util.hpp.
#include "actors/process_util.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include <fmt/format.h>

#include "config/error.hpp"

extern char** environ;

namespace lz::actors {

namespace {

constexpr const char* k_parent_env = "LAZARUS_PARENT_PID";

std::string self_exe() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) LZ_THROW(io_error, "cannot read /proc/self/exe: {}", std::strerror(errno));
  return std::string(buf, static_cast<size_t>(n));
}

}  // namespace

pid_t spawn_self(const std::vector<std::string>& args, const spawn_options& options) {
  const std::string exe = self_exe();
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, k_parent_env, std::strlen(k_parent_env)) != 0) env_strings.push_back(*e);
  }
  env_strings.push_back(fmt::format("{}={}", k_parent_env, ::getpid()));
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_strings{"lazarus"};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : argv_strings) argv.push_back(s.data());
  argv.push_back(nullptr);

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGTERM);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  if (options.pgroup >= 0) {
    flags |= POSIX_SPAWN_SETPGROUP;
    posix_spawnattr_setpgroup(&attr, options.pgroup);
  }
  posix_spawnattr_setflags(&attr, flags);
  for (int fd : options.keep_fds) {  // survive the exec
    const int f = ::fcntl(fd, F_GETFD);
    if (f >= 0) ::fcntl(fd, F_SETFD, f & ~FD_CLOEXEC);
  }
  pid_t pid = 0;
  const int rc = ::posix_spawn(&pid, exe.c_str(), nullptr, &attr, argv.data(), envp.data());
  posix_spawnattr_destroy(&attr);
  for (int fd : options.keep_fds) {
    const int f = ::fcntl(fd, F_GETFD);
    if (f >= 0) ::fcntl(fd, F_SETFD, f | FD_CLOEXEC);
  }
  if (rc != 0) {
    LZ_THROW(io_error, "cannot start '{} {}': {}", exe, args.empty() ? "" : args.front(),
             std::strerror(rc));
  }
  return pid;
}

void die_with_parent() {
  const char* expected = std::getenv(k_parent_env);
  if (expected == nullptr) return;  // started by hand: nobody to die with
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (std::to_string(::getppid()) != expected) std::_Exit(1);  // the parent died already
}

std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) return fmt::format("exit code {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = ::strsignal(sig);
    return fmt::format("signal {} ({})", sig, name != nullptr ? name : "?");
  }
  return fmt::format("wait status {:#x}", status);
}

int exit_code_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

}  // namespace lz::actors
