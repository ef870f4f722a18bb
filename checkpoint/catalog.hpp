// catalog.hpp: the checkpoint catalog, a RocksDB database in the run's state dir.
//
// Column families: "checkpoints" (one record per checkpoint, key = step as 8 big-endian
// bytes so iteration is in step order), "shards" (key = step | rank), "events" (key = a
// sequence number; value = one JSON object) and "meta" (run id, pending deletions).
// A checkpoint is committed by one synced WriteBatch that writes its record and every shard
// record; it is written only after every shard file is durable. latest() only ever names a
// committed, not-corrupt checkpoint. Every rocksdb::Status is checked; a failure is an
// lz::io_error naming the database and the operation.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "checkpoint/reshard.hpp"

namespace lz::checkpoint {

struct shard_record {
  int32_t rank = 0;
  std::string file;             // path relative to the checkpoint root dir
  uint64_t bytes = 0;
  uint64_t header_xxh3 = 0;
  flat_range range;
  bool operator==(const shard_record&) const = default;
};

enum class checkpoint_status { committed, corrupt };

struct checkpoint_record {
  int64_t step = 0;
  int64_t generation = 0;
  int32_t world_size = 1;
  int64_t created_unix_ms = 0;
  uint64_t total_bytes = 0;
  std::string dir;              // relative to the checkpoint root, e.g. "step_00000100"
  std::vector<shard_record> shards;
  checkpoint_status status = checkpoint_status::committed;
  bool verified = false;        // every shard re-read and its checksums checked
  std::string note;             // why it is corrupt, when it is
  bool operator==(const checkpoint_record&) const = default;
};

struct event_record {
  int64_t seq = 0;
  int64_t unix_ms = 0;
  std::string kind;             // e.g. "checkpoint_committed", "shard_corrupt", "save_failed"
  std::string json;             // details, one JSON object
};

// Fault points (fault_hook.hpp), with the checkpoint's step: "catalog.before_commit",
// "catalog.after_commit", "catalog.after_begin_delete" (files not yet removed).
class catalog {
public:
  // Opens (creating if needed) STATE_DIR/catalog. A database another process holds is an
  // io_error saying so (RocksDB's LOCK).
  static std::unique_ptr<catalog> open(const std::string& state_dir);
  ~catalog();

  // One synced WriteBatch: the checkpoint record and its shard records.
  void commit(const checkpoint_record& record);
  // The newest committed checkpoint that is not corrupt.
  std::optional<checkpoint_record> latest() const;
  std::optional<checkpoint_record> get(int64_t step) const;
  // Every checkpoint (committed or corrupt), ascending by step.
  std::vector<checkpoint_record> list() const;

  void mark_verified(int64_t step);
  void mark_corrupt(int64_t step, const std::string& reason);

  // Appends an event (synced) and returns its sequence number.
  int64_t append_event(const std::string& kind, const std::string& json);
  std::vector<event_record> events() const;

  // Crash-safe deletion in two synced steps: begin_delete removes the checkpoint and shard
  // records and remembers the step as pending in "meta"; the caller removes the files; then
  // finish_delete forgets it. After a crash, pending_deletes() lists what to finish.
  void begin_delete(int64_t step);
  void finish_delete(int64_t step);
  std::vector<int64_t> pending_deletes() const;

  // The run id, set once when the run first starts.
  std::optional<std::string> run_id() const;
  void set_run_id(const std::string& id);

private:
  struct impl;
  explicit catalog(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

}  // namespace lz::checkpoint
