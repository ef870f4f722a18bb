// gloo_communicator.hpp: the communicator over Gloo's TCP transport (CPU). The only file
// that includes Gloo is its .cpp.
//
// What ../shared/DEPENDENCIES.md found about this Gloo (Debian's 2022 snapshot) decides the
// calls: only new-style collectives (alltoallv, allgatherv, allreduce, barrier), each with
// the generation's timeout; a dead peer fails the next collective within milliseconds, a
// hung one after the timeout; after an error the context is dead and the next generation
// builds a new one under its own store prefix.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "engine/communicator.hpp"
#include "engine/rendezvous_store.hpp"

namespace lz::engine {

struct gloo_options {
  std::string host = "127.0.0.1";  // the address this rank listens on
  std::chrono::milliseconds timeout{30000};
};

// Connects rank `rank` of `world` for `generation` through `store` (keys under
// "g<generation>/"); blocks until every rank has connected or the timeout passes.
std::unique_ptr<communicator> connect_gloo(rendezvous_store& store, int rank, int world,
                                           int64_t generation, const gloo_options& options);

}  // namespace lz::engine
