// run_state.cpp: opening a run's state dir check-first (see run_state.hpp).
#include "actors/run_state.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>

#include "actors/run_files.hpp"
#include "checkpoint/committer.hpp"
#include "checkpoint/file_io.hpp"
#include "config/json_writer.hpp"
#include "engine/dataset.hpp"

namespace lz::actors {

namespace {

namespace fs = std::filesystem;

}  // namespace

std::optional<run_identity> read_run_identity(const std::string& state_dir) {
  std::ifstream in(identity_path(state_dir));
  if (!in) return std::nullopt;
  run_identity id;
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("run_id=")) id.run_id = line.substr(7);
    if (line.starts_with("checkpoint_root=")) id.checkpoint_root = line.substr(16);
  }
  return id;
}

void write_run_identity(const std::string& state_dir, const run_identity& id) {
  const std::string text =
      "run_id=" + id.run_id + "\ncheckpoint_root=" + id.checkpoint_root + "\n";
  checkpoint::write_file_durably(identity_path(state_dir), {{text.data(), text.size()}});
}

namespace {

// A random run id (16 hex digits).
std::string new_run_id() {
  std::random_device rd;
  const uint64_t id = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  return fmt::format("{:016x}", id);
}

std::string absolute(const std::string& path) {
  return fs::absolute(path).lexically_normal().string();
}

// Where this spec puts the checkpoints of run `run_id`, as an absolute path.
std::string resolve_root(const std::string& state_dir, const config::run_spec& spec,
                         const std::string& run_id) {
  return absolute(checkpoint_root(state_dir, spec.checkpoint.dir, run_id));
}

// STATE_DIR/checkpoints, where checkpoints go when checkpoint.dir is not set.
std::string local_root(const std::string& state_dir) {
  return absolute(checkpoint_root(state_dir, "", ""));
}

}  // namespace

run_state::run_state(run_state&&) noexcept = default;
run_state& run_state::operator=(run_state&&) noexcept = default;
run_state::~run_state() = default;

checkpoint::catalog& run_state::catalog() {
  LZ_CHECK(catalog_ != nullptr, "the catalog is open only when resuming or after begin()");
  return *catalog_;
}

void run_state::refuse(const std::string& message) {
  if (catalog_) {
    try {
      catalog_->append_event("start_refused", config::json_object().add("reason", message).str());
    } catch (const lz::error& e) {
      log_->warn("could not record the refusal in the catalog: {}", e.what());
    }
  }
  LZ_THROW(spec_error, "{}", message);
}

run_state run_state::inspect(const config::run_spec& spec, const std::string& state_dir,
                             const std::string& data_fingerprint, const run_start_flags& flags,
                             spdlog::logger& log) {
  run_state st;
  st.state_dir_ = absolute(state_dir);
  st.data_fingerprint_ = data_fingerprint;
  st.start_over_ = flags.start_over;
  st.log_ = &log;
  const std::optional<run_identity> id = read_run_identity(st.state_dir_);
  if (checkpoint::catalog::exists(st.state_dir_)) {
    st.catalog_ = checkpoint::catalog::open(st.state_dir_);  // the lock, and a healthy catalog
    st.run_id_ = st.catalog_->run_id().value_or("");
    if (id && !id->run_id.empty() && id->run_id != st.run_id_) {
      st.refuse(fmt::format("'{}' says run {} but its catalog holds run {}: the catalog belongs "
                            "to another run; nothing was changed. Put the right catalog back, "
                            "or rebuild it with `lazarus ckpt rebuild-catalog {}`",
                            identity_path(st.state_dir_), id->run_id, st.run_id_,
                            st.state_dir_));
    }
    if (flags.start_over) return st;  // begin() moves the old run aside
    st.resuming_ = true;
    st.check_resume(spec, log);
    return st;
  }
  // No catalog: a new run, unless the state dir shows that an earlier run was here.
  std::vector<std::string> evidence;
  if (id) evidence.push_back(identity_path(st.state_dir_));
  for (const std::string& root :
       {local_root(st.state_dir_), id ? id->checkpoint_root : std::string()}) {
    if (!root.empty() && checkpoint::has_checkpoint_dirs(root)) evidence.push_back(root + "/step_*");
  }
  if (!evidence.empty() && !flags.start_over) {
    std::string list;
    for (const auto& e : evidence) list += (list.empty() ? "" : ", ") + e;
    LZ_THROW(io_error, "'{}' holds an earlier run ({}) but no checkpoint catalog ({}/catalog is "
             "missing): nothing was changed. `lazarus ckpt rebuild-catalog {}` rebuilds the "
             "catalog from the shard files; `lazarus run --start-over` moves the old run to "
             "{}/attic and trains from step 0",
             st.state_dir_, list, st.state_dir_, st.state_dir_, st.state_dir_);
  }
  return st;
}

void run_state::check_resume(const config::run_spec& spec, spdlog::logger& log) {
  const std::vector<checkpoint::checkpoint_record> records = catalog_->list();
  // Where the checkpoints live: as recorded, or moved there as a whole.
  const std::string recorded_root = catalog_->meta(checkpoint::k_meta_checkpoint_root)
                                        .value_or(local_root(state_dir_));
  const std::string wanted_root = resolve_root(state_dir_, spec, run_id_);
  root_ = recorded_root;
  if (wanted_root != recorded_root) {
    const bool all_there = std::all_of(records.begin(), records.end(), [&](const auto& r) {
      return r.status != checkpoint::checkpoint_status::committed ||
             fs::exists(fs::path(wanted_root) / r.dir);
    });
    if (!records.empty() && !all_there) {
      refuse(fmt::format("checkpoint.dir = \"{}\" puts this run's checkpoints in '{}', but they "
                         "are in '{}' (recorded when the run started): set checkpoint.dir so "
                         "that it resolves there (a relative checkpoint.dir resolves against "
                         "the directory you start in), or move the checkpoint directories "
                         "there; nothing was changed",
                         spec.checkpoint.dir, wanted_root, recorded_root));
    }
    log.warn("checkpoint: the checkpoints of this run are now in '{}' (recorded: '{}')",
             wanted_root, recorded_root);
    root_ = wanted_root;
    root_moved_ = true;
  }
  const auto unknown = checkpoint::unrecorded_checkpoint_dirs(*catalog_, root_);
  if (!unknown.empty()) {
    std::string list;
    for (const auto& d : unknown) list += (list.empty() ? "" : ", ") + d;
    refuse(fmt::format("the checkpoint dir '{}' holds directories the catalog has no record of "
                       "({}): the catalog may have lost records, or another run wrote there. "
                       "Nothing was changed. `lazarus ckpt rebuild-catalog {}` adds every "
                       "complete checkpoint to the catalog; or move those directories away",
                       root_, list, state_dir_));
  }
  // Spec keys that may not change, and the data itself.
  if (const auto recorded = catalog_->meta(checkpoint::k_meta_spec)) {
    try {
      diff_ = config::compare_for_resume(config::parse_spec(*recorded, "<recorded spec>"), spec);
    } catch (const spec_error& e) {
      log.warn("the spec recorded in the catalog cannot be read ({}); changed keys cannot be "
               "checked on this start", e.what());
    }
    if (!diff_.refused.empty()) refuse(config::describe_refusal(diff_));
  } else {
    log.warn("the catalog has no recorded spec (a catalog written by an older Lazarus, or a "
             "rebuilt one): changed keys cannot be checked on this start; this spec is recorded");
  }
  if (const auto recorded = catalog_->meta(checkpoint::k_meta_data)) {
    const std::string change = engine::describe_fingerprint_change(*recorded, data_fingerprint_);
    if (!change.empty()) {
      refuse(fmt::format("the training data (data.train_shards = \"{}\") is not the data this "
                         "run was trained on:\n{}Resuming on other data would change the data "
                         "order and the result. Point data.train_shards at the original files, "
                         "or start a new run with another --state-dir",
                         spec.data.train_shards, change));
    }
  }
  int64_t newest = -1;
  for (const auto& r : records) {
    if (r.status == checkpoint::checkpoint_status::committed) newest = std::max(newest, r.step);
  }
  if (spec.run.steps < newest) {
    refuse(fmt::format("run.steps = {} but this run has a committed checkpoint at step {}: "
                       "a run never goes back. Set run.steps to at least {}, or export an "
                       "earlier checkpoint with `lazarus ckpt export --step N {} OUT.bin`",
                       spec.run.steps, newest, newest, state_dir_));
  }
}

void run_state::require_restored(const checkpoint::restore_outcome& outcome) {
  if (outcome.restored || outcome.failures.empty()) return;
  std::string list;
  for (const auto& f : outcome.failures) {
    list += fmt::format("  step {}: {}: {}\n", f.step, f.corrupt ? "corrupt" : "cannot be read",
                        f.error);
  }
  refuse(fmt::format("this run has {} checkpoint(s) in '{}' but none can be restored:\n{}"
                     "Nothing was trained. If the files are only out of reach (a moved "
                     "directory, an unmounted disk, permissions), fix that and run again; "
                     "`lazarus run --start-over` moves the old run to {}/attic and trains "
                     "from step 0",
                     outcome.failures.size(), root_, list, state_dir_));
}

void run_state::move_aside(spdlog::logger& log) {
  const std::string old_root = catalog_ ? catalog_->meta(checkpoint::k_meta_checkpoint_root)
                                              .value_or("") : "";
  catalog_.reset();  // closed before its directory moves
  fs::path attic = fs::path(state_dir_) / "attic" / checkpoint::utc_file_stamp();
  for (int n = 2; fs::exists(attic); ++n) {
    attic = fs::path(state_dir_) / "attic" / fmt::format("{}-{}", checkpoint::utc_file_stamp(), n);
  }
  std::error_code ec;
  fs::create_directories(attic, ec);
  if (ec) LZ_THROW(io_error, "cannot create '{}': {}", attic.string(), ec.message());
  std::vector<std::string> moved;
  for (const char* name : {"catalog", "run_identity", "checkpoints", "metrics.jsonl",
                           "summary.json", "final_model.bin", "sample.txt"}) {
    const fs::path from = fs::path(state_dir_) / name;
    if (!fs::exists(from, ec)) continue;
    fs::rename(from, attic / name, ec);
    if (ec) {
      LZ_THROW(io_error, "cannot move '{}' to '{}': {}", from.string(), (attic / name).string(),
               ec.message());
    }
    moved.push_back(name);
  }
  checkpoint::fsync_directory(attic.string());
  checkpoint::fsync_directory(state_dir_);
  std::string list;
  for (const auto& m : moved) list += (list.empty() ? "" : ", ") + m;
  log.warn("--start-over: moved {} to '{}'{}; training starts from step 0", list,
           attic.string(),
           old_root.empty() || old_root.starts_with(state_dir_ + "/")
               ? ""
               : fmt::format(" (the old checkpoints stay in '{}')", old_root));
  resuming_ = false;
}

void run_state::begin(const config::run_spec& spec) {
  const std::string spec_toml = config::format_spec_toml(spec);
  if (start_over_) move_aside(*log_);
  if (!resuming_) {
    run_id_ = new_run_id();
    root_ = resolve_root(state_dir_, spec, run_id_);
    std::error_code ec;
    fs::create_directories(state_dir_, ec);
    if (ec) {
      LZ_THROW(io_error, "cannot create state dir '{}': {}; pass a writable --state-dir",
               state_dir_, ec.message());
    }
    // The catalog first, with every record of the new run in it before it takes its place:
    // creating it is the step that fails when another run got here first, and then nothing
    // of this run may be left behind.
    catalog_ = checkpoint::catalog::create(state_dir_, run_id_, [&](checkpoint::catalog& c) {
      c.set_meta(checkpoint::k_meta_checkpoint_root, root_);
      c.set_meta(checkpoint::k_meta_spec, spec_toml);
      c.set_meta(checkpoint::k_meta_data, data_fingerprint_);
      c.append_event("run_created", config::json_object()
                                        .add("run_id", run_id_)
                                        .add("checkpoint_root", root_)
                                        .str());
    });
    write_run_identity(state_dir_, {run_id_, root_});
    return;
  }
  std::vector<config::key_change> changes = diff_.allowed;
  changes.insert(changes.end(), diff_.by_content.begin(), diff_.by_content.end());
  for (const config::key_change& c : changes) {
    log_->info("spec: {} changed from {} to {} since the last start", c.key_path, c.before,
               c.after);
    catalog_->append_event("spec_changed", config::json_object()
                                               .add("key", c.key_path)
                                               .add("before", c.before)
                                               .add("after", c.after)
                                               .str());
  }
  if (root_moved_) {
    catalog_->set_meta(checkpoint::k_meta_checkpoint_root, root_);
    catalog_->append_event("checkpoint_root_moved",
                           config::json_object().add("checkpoint_root", root_).str());
  }
  const std::optional<run_identity> id = read_run_identity(state_dir_);
  if (!id || id->checkpoint_root != root_) write_run_identity(state_dir_, {run_id_, root_});
  if (catalog_->meta(checkpoint::k_meta_spec) != spec_toml) {
    catalog_->set_meta(checkpoint::k_meta_spec, spec_toml);
  }
  if (!catalog_->meta(checkpoint::k_meta_data)) {
    catalog_->set_meta(checkpoint::k_meta_data, data_fingerprint_);
  }
}

}  // namespace lz::actors
