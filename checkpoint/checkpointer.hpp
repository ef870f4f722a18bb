// checkpointer.hpp: saving checkpoints of one process's shard, asynchronously.
//
// A save starts at a step boundary and fills host snapshot buffers in one of two ways:
//  - begin_snapshot() hands the buffers to the caller, whose next optimizer update writes
//    the values it reads into them (engine/train_step.hpp: snapshot_next_update); then
//    end_snapshot(). The step pays only for the extra writes inside a memory-bound pass.
//  - save() copies the given tensors on a background thread while the caller goes on with
//    the next forward and backward pass (they only read the weights); the caller calls
//    wait_snapshot() before it modifies the state again. Used at the end of a run.
// A background thread (at a lower CPU priority than training) then writes the shard
// durably, commits the checkpoint to the catalog with one synced batch and applies
// retention. At most one save is in flight; a save due while one is in flight waits for it
// or is skipped (options.skip_when_busy), and says so in the log.
//
// A save that fails (a full disk, an I/O error) is logged and recorded as a "save_failed"
// event; training goes on and the previous committed checkpoint stays the latest.
//
// Every save is recorded in the catalog as in flight before its directory is made, so that
// after a crash recover() removes exactly the directories of saves that never committed and
// nothing else. A committed checkpoint is never overwritten: a save due at a step that is
// already committed (and not proven corrupt) is skipped.
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

#include "checkpoint/catalog.hpp"
#include "checkpoint/retention.hpp"
#include "checkpoint/shard_format.hpp"

namespace lz::checkpoint {

struct checkpointer_options {
  std::string root_dir;          // holds one directory per checkpoint: step_%08lld/
  retention_policy retention;
  bool async = true;             // false: save() returns when the checkpoint is committed
  bool skip_when_busy = false;   // false: a save due while one is in flight waits for it
};

struct checkpointer_stats {
  int64_t started = 0;
  int64_t committed = 0;
  int64_t failed = 0;
  int64_t skipped = 0;
  double blocked_ms = 0.0;       // total time callers spent waiting in save/wait_snapshot
};

// Directory of a checkpoint, relative to the root: "step_00000100".
std::string checkpoint_dir_name(int64_t step);

// The step_* directories under `root_dir` that the catalog has no record of: not a
// checkpoint, not a save in flight, not a deletion pending, not left alone by
// rebuild-catalog. Their presence means the catalog lost records (or the directory holds
// another run's files): a run refuses to start rather than train over them.
std::vector<std::string> unrecorded_checkpoint_dirs(const catalog& cat, const std::string& root_dir);

// Whether `dir` holds any step_* entry (false when it cannot be listed).
bool has_checkpoint_dirs(const std::string& dir);

class checkpointer {
public:
  checkpointer(catalog& cat, const checkpointer_options& options,
               std::shared_ptr<spdlog::logger> log);
  ~checkpointer();  // waits for the save in flight
  checkpointer(const checkpointer&) = delete;
  checkpointer& operator=(const checkpointer&) = delete;

  // Finishes interrupted deletions and removes the directories of saves the catalog
  // recorded as in flight (a save killed before its commit). Call once before the first
  // save, after unrecorded_checkpoint_dirs() found nothing.
  void recover();

  // Allocates (and touches) snapshot buffers for `tensors` tensors of `count` floats, so
  // that the first save pays no page faults inside a training step.
  void reserve(size_t tensors, int64_t count);

  // Starts checkpoint meta.step whose tensors `names` (each meta.range.size() floats) the
  // caller fills into the returned buffers, then calls end_snapshot() (or
  // abandon_snapshot()). Returns nullopt if skipped.
  std::optional<std::vector<float*>> begin_snapshot(const shard_meta& meta,
                                                    const std::vector<std::string>& names);
  void end_snapshot();
  void abandon_snapshot();

  // Starts saving `tensors` (each covering meta.range) as checkpoint meta.step. The sources
  // must stay unchanged until wait_snapshot() returns. Returns false if skipped.
  bool save(const shard_meta& meta, const std::vector<tensor_source>& tensors);
  // Blocks until the snapshot of the last save has been copied.
  void wait_snapshot();
  // Blocks until no save is in flight.
  void wait_idle();

  checkpointer_stats stats() const;

private:
  enum class phase { idle, filling, copying, writing };
  // Waits for the slot (or skips); on success the caller holds it with phase `next`.
  bool acquire(const shard_meta& meta, phase next);
  void ensure_buffers(size_t tensors, int64_t count);
  void worker_loop();
  void run_save();  // on the worker thread: copy, write, commit, retention
  void apply_retention();

  catalog& catalog_;
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
