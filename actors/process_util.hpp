// process_util.hpp: starting and watching the processes of a run.
//
// An actor system is multi-threaded, so processes are started with posix_spawn, never a
// bare fork. A child started by a Lazarus process dies with it: the child sets
// PR_SET_PDEATHSIG itself (posix_spawn cannot), checking that its parent is still the
// process that started it (LAZARUS_PARENT_PID), so that no worker or node agent outlives
// the process it belongs to, whatever happens to that process.
#pragma once

#include <string>
#include <vector>

#include <sys/types.h>

namespace lz::actors {

struct spawn_options {
  // Put the child in process group `pgroup` (0: a new group led by the child; -1: this
  // process's group).
  pid_t pgroup = -1;
  // Descriptors the child keeps (all others are closed on exec by their CLOEXEC flag or
  // here): e.g. a pipe's write end for --ready-fd.
  std::vector<int> keep_fds;
};

// Starts this executable (/proc/self/exe) with `args` (argv[1..]); SIGINT, SIGTERM and the
// signal mask are reset to their defaults in the child. An io_error when it cannot start.
pid_t spawn_self(const std::vector<std::string>& args, const spawn_options& options = {});

// In a child started by spawn_self: die with the parent (SIGKILL). Exits at once, as the
// parent already did, when the parent is gone before this call.
void die_with_parent();

// "exit code 3", "signal 9 (Killed)": a waitpid status in words.
std::string describe_wait_status(int status);

// The exit code a shell would report for `status` (128 + signal for a killed process).
int exit_code_of(int status);

}  // namespace lz::actors
