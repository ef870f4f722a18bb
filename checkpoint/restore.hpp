// restore.hpp: opening a committed checkpoint, and loading the newest good one.
//
// Only proof of damage (corrupt_shard: a checksum mismatch, a bad header, a truncated file)
// marks a checkpoint corrupt in the catalog. A file that is missing or cannot be read, a
// shard from another save, or a format this build cannot read is reported with its path and
// leaves the checkpoint's record as it was: an I/O error is not proof of corruption.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <spdlog/logger.h>

#include "checkpoint/catalog.hpp"
#include "checkpoint/shard_format.hpp"
#include "checkpoint/shard_set.hpp"

namespace lz::checkpoint {

// Opens the shards of `record` under `root_dir` and checks that each file's header is the
// one the catalog committed (a format_error otherwise).
shard_set open_checkpoint(const checkpoint_record& record, const std::string& root_dir);

// Elements [range) of one tensor of the checkpoint, into `out` (range.size() floats). A
// rank restores the whole parameter vector and the moments of the range it owns, whatever
// the world size at save (resharding is range intersection).
struct restore_target {
  std::string name;  // "params", "adam_m", "adam_v"
  flat_range range;
  float* out = nullptr;
};

// What the caller's run must match; a checkpoint of another model is a spec_error, not
// corruption (nothing is marked, nothing falls back).
struct restore_expectation {
  std::string model;       // shard_meta::model
  int64_t flat_total = 0;
};

struct restored_checkpoint {
  checkpoint_record record;
  shard_meta meta;
};

// A checkpoint that could not be restored, and why.
struct restore_failure {
  int64_t step = 0;
  bool corrupt = false;  // proven damaged (marked in the catalog), else unreadable
  std::string error;
};

struct restore_outcome {
  std::optional<restored_checkpoint> restored;
  std::vector<restore_failure> failures;  // newest first, every one tried before `restored`
};

// The newest committed checkpoint before `before_step` whose shard headers are the ones the
// catalog committed and whose model is `expect` (a spec_error otherwise): the choice of a
// restore point, which reads headers only. Each one passed over is appended to `failures`
// and recorded (a header proven damaged marks it corrupt). The ranks then load their
// ranges from it; a failure there is recorded with record_restore_failure() and the next
// older one chosen.
std::optional<restored_checkpoint> next_restore_point(catalog& cat, const std::string& root_dir,
                                                      const restore_expectation& expect,
                                                      int64_t before_step,
                                                      std::vector<restore_failure>& failures,
                                                      spdlog::logger& log);
void record_restore_failure(catalog& cat, const restore_failure& failure, spdlog::logger& log);
// A spec_error when `set` holds another model than `expect`.
void check_expectation(const shard_set& set, const std::string& root_dir,
                       const restore_expectation& expect);

// Tries the catalog's checkpoints newest first: opens the shards (any world size at save)
// and reads every target (of every rank of this process), verifying the checksum of every
// chunk read.
// A corrupt one is marked in the catalog and recorded as a "checkpoint_unusable" event, an
// unreadable one as a "checkpoint_unreadable" event; each is logged with the file and the
// tensor, and the one before is tried. One marked corrupt earlier counts as a failure
// without being read. `restored` is empty when none is usable (or none exists).
restore_outcome restore_latest(catalog& cat, const std::string& root_dir,
                               const std::vector<restore_target>& targets,
                               const restore_expectation& expect, spdlog::logger& log);

}  // namespace lz::checkpoint
