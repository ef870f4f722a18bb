// run_state.hpp: a run's records in its state dir, opened check-first.
//
//   STATE_DIR/run_identity   "run_id=..." and "checkpoint_root=..." lines, written once
//                            before the catalog is created: a state dir that has it (or
//                            checkpoint directories) but no catalog lost its catalog
//   STATE_DIR/catalog        the RocksDB catalog (checkpoint/catalog.hpp)
//   STATE_DIR/attic/TIME/    what `lazarus run --start-over` moved aside (never deleted)
//
// Starting a run has two phases. inspect() reads and checks everything that can refuse the
// start -- the catalog's lock and health, checkpoint directories the catalog has no record
// of, where the checkpoints live, spec keys that may not change, the training data, a
// run.steps below the newest checkpoint -- and writes nothing. The caller then restores
// (require_restored() refuses when the catalog lists checkpoints and none restores), and
// begin() writes: the old run moved aside (start_over), the catalog of a new run, the
// accepted spec, the data fingerprint, and an event for every key that changed.
// A refusal is appended to an open catalog as a "start_refused" event; nothing else is
// written.
#pragma once

#include <memory>
#include <string_view>
#include <optional>
#include <string>
#include <vector>

#include <spdlog/logger.h>

#include "checkpoint/catalog.hpp"
#include "checkpoint/restore.hpp"
#include "config/run_spec.hpp"
#include "config/spec_resume.hpp"

namespace lz::actors {

// The catalog's record that the run trained all of run.steps ("meta"): starting it again
// with the same run.steps says so and trains nothing.
inline constexpr std::string_view k_meta_finished_steps = "finished_steps";
// The generation of the last accepted start: a resumed run goes on from the next one, so
// generations only ever grow over the life of a run.
inline constexpr std::string_view k_meta_generation = "generation";

// STATE_DIR/run_identity.
struct run_identity {
  std::string run_id;
  std::string checkpoint_root;  // absolute
};
std::optional<run_identity> read_run_identity(const std::string& state_dir);
void write_run_identity(const std::string& state_dir, const run_identity& id);  // durably

struct run_start_flags {
  // Train from step 0 even though the state dir holds a run: its catalog, checkpoints and
  // metrics move to STATE_DIR/attic/TIME first.
  bool start_over = false;
};

class run_state {
public:
  // Phase 1: reads and checks; writes nothing (except the "start_refused" event).
  static run_state inspect(const config::run_spec& spec, const std::string& state_dir,
                           const std::string& data_fingerprint, const run_start_flags& flags,
                           spdlog::logger& log);
  run_state(run_state&&) noexcept;
  run_state& operator=(run_state&&) noexcept;
  ~run_state();

  // An earlier run's catalog is open and this start continues it.
  bool resuming() const { return resuming_; }
  const std::string& state_dir() const { return state_dir_; }     // absolute
  const std::string& run_id() const { return run_id_; }           // "" for a new run before begin()
  const std::string& checkpoint_root() const { return root_; }    // absolute
  checkpoint::catalog& catalog();                                 // resuming, or after begin()

  // Refuses (spec_error naming every checkpoint and why) when the catalog lists
  // checkpoints but none could be restored.
  void require_restored(const checkpoint::restore_outcome& outcome);

  // Phase 2: the writes.
  void begin(const config::run_spec& spec);

private:
  run_state() = default;
  [[noreturn]] void refuse(const std::string& message);
  void check_resume(const config::run_spec& spec, spdlog::logger& log);
  void move_aside(spdlog::logger& log);

  std::string state_dir_;
  std::string run_id_;
  std::string root_;
  std::string data_fingerprint_;
  bool resuming_ = false;
  bool start_over_ = false;
  bool root_moved_ = false;
  config::resume_diff diff_;
  std::unique_ptr<checkpoint::catalog> catalog_;
  spdlog::logger* log_ = nullptr;
};

}  // namespace lz::actors
