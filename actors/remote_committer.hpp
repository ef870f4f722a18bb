// remote_committer.hpp: a worker's link to the catalog actor, the one committer of a run.
//
// A rank's checkpointer (checkpoint/checkpointer.hpp) writes its shard itself and reports
// it here; the catalog actor in the coordinator process commits the step when every rank's
// shard is durable. begin() asks the catalog actor (every rank asks, it decides once for
// all) and waits for the answer at most `timeout`; the reports are one-way messages.
#pragma once

#include <chrono>
#include <string>

#include <caf/all.hpp>

#include "checkpoint/committer.hpp"

namespace lz::actors {

class remote_committer final : public checkpoint::commit_protocol {
public:
  remote_committer(caf::actor_system& sys, caf::actor catalog, std::string root_dir,
                   int64_t generation, std::chrono::milliseconds timeout);
  bool begin(int64_t step, int32_t world, int64_t generation) override;
  void shard_durable(int64_t step, const checkpoint::shard_record& shard) override;
  void shard_failed(int64_t step, int32_t rank, const std::string& error) override;
  const std::string& root_dir() const override { return root_dir_; }

private:
  caf::actor_system& sys_;
  caf::actor catalog_;
  std::string root_dir_;
  int64_t generation_;
  std::chrono::milliseconds timeout_;
};

}  // namespace lz::actors
