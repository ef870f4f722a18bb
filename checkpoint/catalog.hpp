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
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
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

enum class catalog_access { read_write, read_only };

// Names of the run's records in the "meta" column family (besides the run id).
inline constexpr std::string_view k_meta_checkpoint_root = "checkpoint_root";  // absolute
inline constexpr std::string_view k_meta_spec = "spec_toml";     // spec of the last start
inline constexpr std::string_view k_meta_data = "data_fingerprint";

// A save the catalog knows is under way: its directory may be removed after a crash.
struct inflight_save {
  int64_t step = 0;
  std::string dir;  // relative to the checkpoint root
};

// Fault points (fault_hook.hpp), with the checkpoint's step: "catalog.before_commit",
// "catalog.after_commit", "catalog.after_begin_delete" (files not yet removed).
class catalog {
public:
  // Creates the catalog of a new run in STATE_DIR/catalog holding `run_id`: built in
  // catalog.creating, where `fill` (when given) adds records, then renamed into place, so a
  // crash never leaves half a catalog. `before_rename` (when given) runs just before the
  // rename and may move an existing catalog aside. Refuses (io_error) when STATE_DIR/catalog
  // exists at the rename (and, without before_rename, before building): a catalog is never
  // created over another one; and while another process creates one there.
  static std::unique_ptr<catalog> create(const std::string& state_dir, const std::string& run_id,
                                         const std::function<void(catalog&)>& fill = {},
                                         const std::function<void()>& before_rename = {});
  // Opens the existing STATE_DIR/catalog; never creates one. A missing, damaged or
  // unreadable catalog, a full or read-only disk and a catalog another process holds are
  // io_errors that name the file and the fix; nothing on disk is changed. read_only takes
  // no lock and writes nothing (for listing an archived or live state dir).
  static std::unique_ptr<catalog> open(const std::string& state_dir,
                                       catalog_access access = catalog_access::read_write);
  static bool exists(const std::string& state_dir);
  ~catalog();

  const std::string& path() const;

  // One synced WriteBatch: the checkpoint record and its shard records; forgets the step's
  // in-flight record.
  void commit(const checkpoint_record& record);

  // Records a save of `step` into `dir` as under way (synced) before any of its files
  // exist; commit() or abort_save() forgets it. After a crash, inflight_saves() lists the
  // directories that may be removed: only these, never a directory the catalog has no
  // record of.
  void begin_save(int64_t step, const std::string& dir);
  void abort_save(int64_t step);
  std::vector<inflight_save> inflight_saves() const;
  // The newest committed checkpoint that is not corrupt.
  std::optional<checkpoint_record> latest() const;
  std::optional<checkpoint_record> get(int64_t step) const;
  // Every checkpoint (committed or corrupt), ascending by step.
  std::vector<checkpoint_record> list() const;

  // Every shard re-read and every checksum matched: verified, and no longer corrupt (a
  // verify that passes clears an earlier mark).
  void mark_verified(int64_t step);
  // Only for proof of damage (a checksum mismatch, a bad header, a truncated file); a file
  // that cannot be read is not proof.
  void mark_corrupt(int64_t step, const std::string& reason);

  // Appends an event (synced) and returns its sequence number.
  int64_t append_event(const std::string& kind, const std::string& json);
  // The same with the time it happened (a rebuilt catalog carries old events over).
  int64_t append_event_at(int64_t unix_ms, const std::string& kind, const std::string& json);
  std::vector<event_record> events() const;

  // Crash-safe deletion in two synced steps: begin_delete removes the checkpoint and shard
  // records and remembers the step as pending in "meta"; the caller removes the files; then
  // finish_delete forgets it. After a crash, pending_deletes() lists what to finish.
  void begin_delete(int64_t step);
  void finish_delete(int64_t step);
  std::vector<int64_t> pending_deletes() const;

  // The run id, recorded by create().
  std::optional<std::string> run_id() const;

  // Other records of the run (k_meta_*), as text.
  std::optional<std::string> meta(std::string_view name) const;
  void set_meta(std::string_view name, const std::string& value);

  // Checkpoint directories that `lazarus ckpt rebuild-catalog` found incomplete and left
  // where they are (dir -> why); a run does not refuse to start because of them.
  void leave_alone(const std::string& dir, const std::string& reason);
  std::vector<std::pair<std::string, std::string>> left_alone() const;

private:
  struct impl;
  explicit catalog(std::unique_ptr<impl> p);
  static std::unique_ptr<catalog> open_at(const std::string& path, const std::string& state_dir,
                                          catalog_access access, bool create);
  std::unique_ptr<impl> impl_;
};

}  // namespace lz::checkpoint
