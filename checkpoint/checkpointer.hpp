// checkpointer.hpp: one rank's part of a checkpoint, saved asynchronously.
//
// A save starts at a step boundary, once the committer (committer.hpp) has decided for all
// ranks that it goes ahead, and fills host snapshot buffers of this rank's range in one of
// two ways:
//  - begin_snapshot() hands the buffers to the caller, whose next optimizer update writes
//    the values it reads into them (engine/train_step.hpp: snapshot_next_update); then
//    end_snapshot(), or end_snapshot_by_copy() when no update will come (the last step,
//    a stop);
//  - save() copies the given tensors on a background thread while the caller goes on with
//    the next forward and backward pass (they only read the weights); the caller calls
//    wait_snapshot() before it modifies the state again.
// A background thread (at a lower CPU priority than training) then writes this rank's
// shard durably into the step's directory under the committer's root (which the committer
// made) and reports it to the committer, durable or
// failed; a rank whose write fails removes only its own file. At most one save is in
// flight per rank.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/logger.h>

#include "checkpoint/committer.hpp"
#include "checkpoint/shard_format.hpp"

namespace lz::checkpoint {

struct checkpointer_options {
  bool async = true;             // false: a save returns when the committer has its report
  std::chrono::milliseconds wait_timeout{std::chrono::minutes(10)};  // for any wait
};

struct checkpointer_stats {
  int64_t started = 0;
  int64_t durable = 0;
  int64_t failed = 0;
  double blocked_ms = 0.0;       // total time the caller spent waiting for a snapshot
};

class checkpointer {
public:
  checkpointer(commit_protocol& commit, const checkpointer_options& options,
               std::shared_ptr<spdlog::logger> log);
  ~checkpointer();  // waits for the save in flight
  checkpointer(const checkpointer&) = delete;
  checkpointer& operator=(const checkpointer&) = delete;

  // Allocates (and touches) snapshot buffers for `tensors` tensors of `count` floats, so
  // that the first save pays no page faults inside a training step.
  void reserve(size_t tensors, int64_t count);

  // Starts this rank's part of checkpoint meta.step, whose tensors `names` (each
  // meta.range.size() floats) the caller fills into the returned buffers, then calls
  // end_snapshot(). Returns nullopt when the committer skips the step.
  std::optional<std::vector<float*>> begin_snapshot(const shard_meta& meta,
                                                    const std::vector<std::string>& names);
  void end_snapshot();
  // Fills the open snapshot by copying `tensors` instead (they must stay unchanged until
  // wait_snapshot() returns): for an update that will not come.
  void end_snapshot_by_copy(const std::vector<tensor_source>& tensors);
  // Gives up the open snapshot: the committer hears this rank failed the save.
  void abandon_snapshot();
  bool snapshot_open() const;

  // Starts saving `tensors` (each covering meta.range) as this rank's part of checkpoint
  // meta.step. The sources must stay unchanged until wait_snapshot() returns. Returns false
  // when the committer skips the step.
  bool save(const shard_meta& meta, const std::vector<tensor_source>& tensors);
  // Blocks until the snapshot of the last save has been copied.
  void wait_snapshot();
  // Blocks until this rank's save has been reported to the committer.
  void wait_idle();

  checkpointer_stats stats() const;

private:
  enum class phase { idle, filling, copying, writing };
  // Waits for the slot (or skips); on success the caller holds it with phase `next`.
  bool acquire(const shard_meta& meta, phase next);
  void ensure_buffers(size_t tensors, int64_t count);
  void worker_loop();
  void run_save();  // on the worker thread: copy, write, report

  commit_protocol& committer_;
  checkpointer_options options_;
  std::shared_ptr<spdlog::logger> log_;

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  phase phase_ = phase::idle;
  bool stopping_ = false;
  bool pending_ = false;                 // a save was handed to the worker
  shard_meta meta_;                      // of the save in flight
  std::vector<tensor_source> sources_;   // valid until the copy is done
  std::vector<std::string> names_;       // of the tensors in snapshot_
  std::vector<std::vector<float>> snapshot_;  // host copy, one per tensor
  checkpointer_stats stats_;
  std::thread worker_;
};

}  // namespace lz::checkpoint
