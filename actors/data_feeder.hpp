// data_feeder.hpp: a node's training data, read once, served to its ranks by (step, slot).
//
// The data feeder actor of a node agent holds the node's copy of the training shards and
// the data plan (a pure function of seed, step and slot: engine/data_plan.hpp), and answers
// a batch_request with the token windows of those slots at that step, the same whichever
// rank or node asks. feeder_batches is the rank's side (an engine::batch_source): it keeps
// the requests of the next `prefetch_steps` steps in flight, so the batches of a step are
// in its mailbox before the step asks for them; a step waits for data only when the feeder
// falls behind, and never longer than the timeout.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include <caf/all.hpp>

#include "actors/messages.hpp"
#include "config/run_spec.hpp"
#include "engine/dataset.hpp"

namespace lz::actors {

// Reads the spec's training shards (data.train_shards, an absolute pattern) and serves them.
caf::behavior data_feeder(caf::event_based_actor* self, config::run_spec spec);

class feeder_batches final : public engine::batch_source {
public:
  // Batches of slots [slot_begin, slot_end) of (micro_batch, seq_len) tokens each.
  feeder_batches(caf::actor_system& sys, caf::actor feeder, int64_t slot_begin, int64_t slot_end,
                 int64_t micro_batch, int64_t seq_len, int prefetch_steps,
                 std::chrono::milliseconds timeout);
  void fill(int64_t step, int64_t slot, int32_t* inputs, int32_t* targets) override;
  double wait_ms() const { return wait_ms_; }  // total time fill() waited for a batch

private:
  void request(int64_t step);

  caf::scoped_actor self_;
  caf::actor feeder_;
  int64_t slot_begin_, slot_end_, rows_;
  int prefetch_steps_;
  std::chrono::milliseconds timeout_;
  std::map<int64_t, msg::batch> ready_;
  int64_t first_requested_ = -1, next_request_ = -1;  // steps [first, next) are asked for
  double wait_ms_ = 0.0;
};

}  // namespace lz::actors
