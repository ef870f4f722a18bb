// worker.hpp: `lazarus worker`, one process per rank, started by a node agent only.
//
// Hosts the rank worker actor (the coordinator's control messages, always answered: the
// step loop runs on the process's main thread, never inside an actor) and the rank's
// checkpointer, around one rank session (rank_session.hpp). The worker ignores SIGINT and
// SIGTERM (a terminal's Ctrl-C reaches the whole process group; the coordinator decides
// how the run stops) and dies with its node agent.
//
// Its life: hello to the coordinator (worker_setup comes back: the spec, the run, the
// catalog and the rendezvous store) -> connect the generation's communicator and build the
// session -> worker_ready -> restore_from (load this rank's ranges; restore_result) ->
// begin_training -> step reports until run.steps or a stop -> rank_done -> exit 0.
#pragma once

#include <cstdint>
#include <string>

namespace lz::actors {

struct worker_options {
  std::string coordinator;      // HOST:PORT
  int32_t rank = 0;
  int64_t generation = 0;
  int32_t node_id = 0;
  uint16_t feeder_port = 0;     // the node agent's data feeder, on 127.0.0.1
  std::string host = "127.0.0.1";  // the address this rank's communicator binds to
};

int run_worker(const worker_options& options);

}  // namespace lz::actors
