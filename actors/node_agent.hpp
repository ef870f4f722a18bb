// node_agent.hpp: `lazarus node`, one per machine.
//
// The node supervisor actor joins a coordinator (node_hello: its name, slots and the
// address its ranks bind to), hosts the node's data feeder (data_feeder.hpp, published on
// 127.0.0.1 for its workers), starts one `lazarus worker` process per rank the coordinator
// assigns (posix_spawn), reaps each with waitpid on a thread of its own and reports its
// exit (code or signal) at once, and heartbeats. It ends when the coordinator ends the run
// or is gone; its workers die with it (PR_SET_PDEATHSIG). The first SIGINT or SIGTERM only
// says that the coordinator decides how the run stops; a second one ends the node and its
// workers at once.
#pragma once

#include <cstdint>
#include <string>

namespace lz::actors {

struct node_options {
  std::string join;               // the coordinator, HOST:PORT
  int32_t slots = 1;
  std::string name;               // "" : the host name
  std::string host = "127.0.0.1"; // the address this node's ranks bind their communicator to
  int64_t heartbeat_interval_ms = 500;
};

int run_node(const node_options& options);

}  // namespace lz::actors
