// coordinator.hpp: `lazarus coordinator`, the daemon of one run.
//
// Everything that can refuse the start is checked before anything is written or anyone is
// told (run_state.hpp: the state dir, the spec against the recorded one, the data); then
// the process hosts
//   the coordinator actor   the run's state machine: node agents join (node_hello) until
//                           their slots cover parallel.ranks, ranks are assigned
//                           (rank_assignment.hpp), the nodes start the workers, the
//                           workers restore the chosen checkpoint and train; it aggregates
//                           their step reports into metrics.jsonl and the progress line,
//                           and ends the run: finished, stopped (SIGINT/SIGTERM: every rank
//                           finishes its step and saves it) or failed (a rank or node lost:
//                           the error names the rank, the node and the signal);
//   the supervisor          watches the node agents and workers and reports each fault
//                           (supervisor.hpp);
//   the catalog actor       the one committer (catalog_actor.hpp);
//   the rendezvous store    for the communicators (store_actor.hpp).
// It listens on --listen (port 0: any free port) and writes the address it got to
// STATE_DIR/coordinator.addr (and to --ready-fd). Exit code: 0 finished, 128 + signal when
// a signal stopped it, 1 when the run failed, 2 for an invalid spec.
#pragma once

#include <string>

#include "actors/run_state.hpp"
#include "config/run_spec.hpp"

namespace lz::actors {

struct coordinator_options {
  std::string state_dir;
  std::string listen = "127.0.0.1:0";
  int ready_fd = -1;       // where the address goes once listening (lazarus run), or -1
  bool progress = true;    // a progress line on stderr when it is a terminal
  run_start_flags start;
};

int run_coordinator(const config::run_spec& spec, const coordinator_options& options);

// The path of the address file in a state dir.
std::string coordinator_addr_path(const std::string& state_dir);

}  // namespace lz::actors
