// launcher.hpp: `lazarus run`, the embedded default: a whole cluster on this machine.
//
// Starts `lazarus coordinator` and parallel.nodes `lazarus node` agents as child processes
// on loopback, parallel.ranks slots spread over them: the same code path as a cluster, only
// the addresses differ. The children run in a process group of their own, so the terminal's
// Ctrl-C reaches only this process, which passes the first SIGINT or SIGTERM on to the
// coordinator (every rank finishes its step and saves it) and ends the whole group with
// SIGKILL at the second. The children die with this process whatever happens to it
// (PR_SET_PDEATHSIG). Exit code: the coordinator's.
#pragma once

#include <string>
#include <vector>

#include "config/run_spec.hpp"

namespace lz::actors {

struct launch_options {
  std::vector<std::string> spec_args;  // [SPEC] and --set k=v, as given: the coordinator's
  std::string state_dir;
  bool progress = true;
  bool start_over = false;
};

int run_launcher(const config::run_spec& spec, const launch_options& options);

}  // namespace lz::actors
