// rank_session.hpp: one rank of a run, whoever drives it (no CAF here).
//
// Built from the resolved spec, the rank's place in a world (its communicator) and the
// training data; owns the model, the AdamW moments of the parameter range this rank owns
// (ZeRO-1), the batcher and the step. It restores its ranges from a checkpoint, runs steps
// together with the other ranks of its world, and takes its part of a checkpoint (its
// range's weights and moments) through its checkpointer. The one-process `lazarus run`
// drives one per rank on threads; the benchmarks and the worker process drive the same
// object.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <spdlog/logger.h>

#include "checkpoint/checkpointer.hpp"
#include "checkpoint/memory_snapshot.hpp"
#include "checkpoint/restore.hpp"
#include "config/run_spec.hpp"
#include "engine/communicator.hpp"
#include "engine/dataset.hpp"
#include "engine/gpt2.hpp"
#include "engine/optimizer.hpp"
#include "engine/train_step.hpp"
#include "kernels/backend.hpp"

namespace lz::actors {

class rank_session {
public:
  // `comm` is this rank's communicator of its world; `batches` (the node's data feeder, or a
  // batcher over data in this process) must outlive the session.
  rank_session(const config::run_spec& spec, engine::communicator& comm,
               engine::batch_source& batches, std::shared_ptr<spdlog::logger> log);
  // Batches cut from `train` in this process (which must outlive the session).
  rank_session(const config::run_spec& spec, engine::communicator& comm,
               const engine::token_dataset& train, std::shared_ptr<spdlog::logger> log);
  ~rank_session();
  rank_session(const rank_session&) = delete;
  rank_session& operator=(const rank_session&) = delete;

  int rank() const { return comm_.rank(); }
  int world_size() const { return comm_.world_size(); }
  engine::gpt2& model() { return *model_; }
  kernels::backend& backend() { return *backend_; }
  engine::owned_range owned() const { return owned_; }
  engine::slot_node slots() const { return stepper_->slots(); }
  int64_t gradient_buffers() const { return stepper_->gradient_buffers(); }

  // What this rank reads from a checkpoint: the whole parameter vector, and the moments
  // of the range it owns.
  std::vector<checkpoint::restore_target> restore_targets();
  // The weights of step 0: the spec's seed, or model.init_from.
  void init_weights();

  // One optimizer step, on every rank of the world together (collectives inside). A
  // discarded step (non-finite loss or norm) is discarded on every rank alike and changes
  // nothing: it may be run again. (Fault point "train.loss" with action nan poisons it.)
  engine::step_result step(int64_t step);

  // Whether any rank of the world wants to stop after this step: `mine`, or a stop asked
  // with request_stop() (one small collective: every rank asks at the same step boundary
  // and gets the same answer).
  bool any_rank_stops(bool mine);
  // Asks this rank to stop at the next step boundary; callable from any thread.
  void request_stop() { stop_requested_ = true; }
  bool stop_requested() const { return stop_requested_; }

  // In-memory restore points (checkpoint/memory_snapshot.hpp). keep_copy() copies this
  // rank's part of the state after `steps_done` steps into `snap` and swaps it with the copy
  // `replica_to` keeps of it, receiving the one of `replica_from` (every rank of the world
  // together; the bytes go over the communicator). restore_from_memory() gives every rank
  // of the world the state after `step` from the copies `held` (all of that step) that the
  // ranks keep in their snapshots; the copies stay as they are.
  void keep_copy(checkpoint::memory_snapshot& snap, int64_t steps_done, int replica_to,
                 int replica_from);
  void restore_from_memory(const checkpoint::memory_snapshot& snap, int64_t step,
                           const std::vector<checkpoint::held_range>& held);

  // Checkpoints: this rank's shards go through `committer` into its root dir. The
  // committer must outlive this session (or its detach_checkpointer()): a save in flight
  // reports to it until the detach, which the destructor does, has waited for it.
  void attach_checkpointer(checkpoint::commit_protocol& committer,
                           const checkpoint::checkpointer_options& options,
                           const std::string& run_id, int64_t generation);
  // Saves the state after `steps_done` steps: fused into the next optimizer update, or by a
  // copy when `final` (no update will come). No-op when the committer skips the step.
  void save_after(int64_t steps_done, bool final);
  // A fused snapshot still open (no update came, e.g. a stop): filled by a copy instead.
  void finish_open_snapshot();
  void wait_checkpoint_idle();
  checkpoint::checkpointer_stats checkpoint_stats() const;
  void detach_checkpointer();

private:
  rank_session(const config::run_spec& spec, engine::communicator& comm,
               std::unique_ptr<engine::train_batcher> own, std::shared_ptr<spdlog::logger> log);
  checkpoint::shard_meta meta_for(int64_t steps_done) const;
  std::vector<checkpoint::tensor_source> sources() const;

  const config::run_spec spec_;
  engine::communicator& comm_;
  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<kernels::backend> backend_;
  std::unique_ptr<engine::gpt2> model_;
  engine::owned_range owned_;
  std::unique_ptr<engine::adamw_optimizer> optimizer_;
  std::unique_ptr<engine::train_batcher> own_batcher_;  // when built from a dataset
  std::unique_ptr<engine::train_step> stepper_;
  std::unique_ptr<checkpoint::checkpointer> ckpt_;
  std::string run_id_;
  int64_t generation_ = 0;
  int64_t step_in_progress_ = 0;  // 1-based, for fault points
  std::string descriptor_;
  std::atomic<bool> stop_requested_{false};
};

}  // namespace lz::actors
