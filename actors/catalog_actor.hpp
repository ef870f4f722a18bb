// catalog_actor.hpp: the one committer of a run, in the coordinator process.
//
// Owns the run's records (run_state: the RocksDB catalog, spec, identity) and, once the
// start is accepted, the committer: every rank's checkpointer asks it whether a save goes
// ahead (save_begin; a save due while one is in flight waits here under when_busy = "wait",
// without blocking this actor) and reports its shard durable or failed; the step commits
// with one synced batch when all W shards are durable. It also chooses restore points
// (reading shard headers only; the ranks load their ranges themselves) and records what
// the ranks found. Runs on a thread of its own: RocksDB writes and fsyncs block.
// A report from another generation, or for a step that is not in flight, is dropped and
// logged: it never reaches the committer.
#pragma once

#include <memory>
#include <string>

#include <caf/all.hpp>
#include <spdlog/logger.h>

#include "actors/run_state.hpp"
#include "checkpoint/restore.hpp"
#include "config/run_spec.hpp"

namespace lz::actors {

struct catalog_actor_config {
  config::run_spec spec;
  std::shared_ptr<run_state> state;       // inspected; begun already for a new run
  checkpoint::restore_expectation expect;
  std::shared_ptr<spdlog::logger> log;
};

caf::behavior catalog_actor(caf::event_based_actor* self, catalog_actor_config config);

}  // namespace lz::actors
