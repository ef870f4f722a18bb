// committer.hpp: the one owner of the catalog's commit protocol for a world of ranks.
//
// Every rank writes its own shard (checkpointer.hpp) and reports it here, durable or
// failed. The committer
//  - decides, once per step and for every rank alike, whether the save of a step goes
//    ahead: not when the step is already committed (a committed checkpoint is never
//    overwritten), and not while an earlier save is in flight under
//    checkpoint.when_busy = "skip" ("wait" blocks until it is done);
//  - records the save as in flight in the catalog before any rank writes a byte;
//  - commits the step with one synced batch when all W shards are durable, and applies
//    retention; or, when any rank failed, removes the step's directory (the catalog
//    recorded it as in flight) and records a "save_failed" event;
//  - after a crash, recover() finishes interrupted deletions and removes the directories
//    of saves recorded in flight, and nothing else.
// Thread-safe: in one process every rank's writer thread reports to the same committer; in
// the distributed runtime the catalog actor owns it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <spdlog/logger.h>

#include "checkpoint/catalog.hpp"
#include "checkpoint/retention.hpp"
#include "config/error.hpp"

namespace lz::checkpoint {

// Directory of a checkpoint, relative to the root: "step_00000100".
std::string checkpoint_dir_name(int64_t step);
// File of one rank's shard in it: "shard_00001_of_00004.lzs".
std::string shard_file_name(int32_t rank, int32_t world);

// The step_* directories under `root_dir` that the catalog has no record of: not a
// checkpoint, not a save in flight, not a deletion pending, not left alone by
// rebuild-catalog. Their presence means the catalog lost records (or the directory holds
// another run's files): a run refuses to start rather than train over them.
std::vector<std::string> unrecorded_checkpoint_dirs(const catalog& cat, const std::string& root_dir);

// Whether `dir` holds any step_* entry (false when it cannot be listed).
bool has_checkpoint_dirs(const std::string& dir);

struct committer_options {
  std::string root_dir;          // holds one directory per checkpoint: step_%08lld/
  retention_policy retention;
  bool skip_when_busy = false;   // false: a save due while one is in flight waits for it
  std::chrono::milliseconds wait_timeout{std::chrono::minutes(10)};  // for any wait
};

// Waits on `cv` until `done()`, at most `timeout`; then an io_error saying what it waited
// for. No wait of the training loop is unbounded.
template <class Pred>
void wait_or_throw(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                   std::chrono::milliseconds timeout, Pred done, const std::string& what) {
  if (!cv.wait_for(lock, timeout, done)) {
    LZ_THROW(io_error, "checkpoint: {} did not happen within {} ms; the disk or a rank's "
             "writer is stuck: check the disk holding the checkpoints", what, timeout.count());
  }
}

struct committer_stats {
  int64_t started = 0;
  int64_t committed = 0;
  int64_t failed = 0;
  int64_t skipped = 0;
  double blocked_ms = 0.0;       // time ranks spent waiting in begin() for a save in flight
};

// What a rank's checkpointer needs of the commit protocol: the committer itself in the
// process that owns the catalog, or a link to it from a worker process (the catalog actor;
// actors/remote_committer.hpp).
class commit_protocol {
public:
  virtual ~commit_protocol() = default;
  // Whether the save of `step` by `world` ranks goes ahead; every rank asks, the first
  // decides, all get the same answer.
  virtual bool begin(int64_t step, int32_t world, int64_t generation) = 0;
  virtual void shard_durable(int64_t step, const shard_record& shard) = 0;
  virtual void shard_failed(int64_t step, int32_t rank, const std::string& error) = 0;
  // Where the step directories are (the committer made it).
  virtual const std::string& root_dir() const = 0;
};

class committer final : public commit_protocol {
public:
  committer(catalog& cat, const committer_options& options, std::shared_ptr<spdlog::logger> log);
  committer(const committer&) = delete;
  committer& operator=(const committer&) = delete;

  // Finishes interrupted deletions and removes the directories of saves the catalog
  // recorded as in flight. Call once before the first save, after
  // unrecorded_checkpoint_dirs() found nothing.
  void recover();

  // Whether the save of `step` by `world` ranks goes ahead; every rank asks, the first
  // decides, all get the same answer. A failure to record it is logged and skips it. Under
  // when_busy = "wait" it blocks while an earlier save is in flight.
  bool begin(int64_t step, int32_t world, int64_t generation) override;
  // The same decision without blocking: nullopt when begin() would wait for the save in
  // flight (ask again when it has finished).
  std::optional<bool> try_begin(int64_t step, int32_t world, int64_t generation);
  void shard_durable(int64_t step, const shard_record& shard) override;
  void shard_failed(int64_t step, int32_t rank, const std::string& error) override;
  // The save in flight, if it is from a generation before `generation`, can never complete
  // (its world is gone, and every writer of it has stopped): it fails as if a rank had
  // failed it, and its directory (recorded in flight) is removed. Returns its step.
  std::optional<int64_t> abandon_older_than(int64_t generation, const std::string& why);
  // The step of the save in flight, if any (a report for another step is not expected).
  std::optional<int64_t> step_in_flight() const;

  // Blocks until no save is in flight.
  void wait_idle();
  committer_stats stats() const;
  const std::string& root_dir() const override { return options_.root_dir; }

private:
  struct save_in_flight {
    int64_t step = 0;
    int32_t world = 0;
    int64_t generation = 0;
    std::vector<shard_record> durable;
    std::vector<std::string> errors;
    std::chrono::steady_clock::time_point started;
  };
  // The decision of begin() with mutex_ held; nullopt when it must wait and `may_wait` is
  // false.
  std::optional<bool> decide_begin(std::unique_lock<std::mutex>& lock, int64_t step,
                                   int32_t world, int64_t generation, bool may_wait);
  // All ranks have reported: commit or clean up (mutex_ held).
  void finish();
  void apply_retention();

  catalog& catalog_;
  committer_options options_;
  std::shared_ptr<spdlog::logger> log_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::optional<save_in_flight> inflight_;
  // The answer for the last few (generation, step) asked about: every rank of a world gets
  // the same one; a later world saving the same step again (after a recovery) asks anew.
  std::map<std::pair<int64_t, int64_t>, bool> decided_;
  committer_stats stats_;
};

}  // namespace lz::checkpoint
