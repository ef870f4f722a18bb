#include "checkpoint/checkpointer.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <set>

#include <sys/resource.h>
#include <unistd.h>

#include <fmt/format.h>

#include "checkpoint/fault_hook.hpp"
#include "checkpoint/file_io.hpp"
#include "config/json_writer.hpp"

namespace lz::checkpoint {

namespace fs = std::filesystem;

namespace {

int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

std::string checkpoint_dir_name(int64_t step) {
  return fmt::format("step_{:08d}", step);
}

checkpointer::checkpointer(catalog& cat, const checkpointer_options& options,
                           std::shared_ptr<spdlog::logger> log)
  : catalog_(cat), options_(options), log_(std::move(log)) {
  std::error_code ec;
  fs::create_directories(options_.root_dir, ec);
  if (ec) {
    LZ_THROW(io_error, "cannot create checkpoint dir '{}': {}; set checkpoint.dir to a "
             "writable directory", options_.root_dir, ec.message());
  }
  worker_ = std::thread([this] { worker_loop(); });
}

checkpointer::~checkpointer() {
  abandon_snapshot();
  {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [this] { return !pending_; });
    stopping_ = true;
  }
  changed_.notify_all();
  worker_.join();
}

std::vector<std::string> unrecorded_checkpoint_dirs(const catalog& cat,
                                                    const std::string& root_dir) {
  std::set<std::string> known;
  for (const auto& r : cat.list()) known.insert(r.dir);
  for (const auto& save : cat.inflight_saves()) known.insert(save.dir);
  for (int64_t step : cat.pending_deletes()) known.insert(checkpoint_dir_name(step));
  for (const auto& [dir, reason] : cat.left_alone()) known.insert(dir);
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root_dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.starts_with("step_") && known.count(name) == 0) out.push_back(name);
  }
  if (ec && ec != std::errc::no_such_file_or_directory) {
    LZ_THROW(io_error, "cannot list checkpoint dir '{}': {}", root_dir, ec.message());
  }
  std::sort(out.begin(), out.end());
  return out;
}

bool has_checkpoint_dirs(const std::string& dir) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.path().filename().string().starts_with("step_")) return true;
  }
  return false;
}

void checkpointer::recover() {
  const auto remove_dir = [this](const std::string& name) {
    const fs::path dir = fs::path(options_.root_dir) / name;
    std::error_code ec;
    fs::remove_all(dir, ec);
    if (ec) LZ_THROW(io_error, "cannot remove '{}': {}", dir.string(), ec.message());
  };
  for (int64_t step : catalog_.pending_deletes()) {
    remove_dir(checkpoint_dir_name(step));
    catalog_.finish_delete(step);
    log_->info("checkpoint: finished the interrupted deletion of step {}", step);
  }
  for (const inflight_save& save : catalog_.inflight_saves()) {
    remove_dir(save.dir);
    catalog_.abort_save(save.step);
    log_->warn("checkpoint: removed '{}', the save of step {} that never committed",
               (fs::path(options_.root_dir) / save.dir).string(), save.step);
    catalog_.append_event("uncommitted_removed", config::json_object()
                                                     .add("step", save.step)
                                                     .add("dir", save.dir)
                                                     .str());
  }
}

bool checkpointer::acquire(const shard_meta& meta, phase next) {
  const auto t0 = std::chrono::steady_clock::now();
  if (const auto existing = catalog_.get(meta.step);
      existing && existing->status == checkpoint_status::committed) {
    std::lock_guard lock(mutex_);
    stats_.skipped++;
    log_->info("checkpoint: step {} is already committed; a committed checkpoint is never "
               "overwritten", meta.step);
    return false;
  }
  std::unique_lock lock(mutex_);
  if (pending_) {
    if (options_.skip_when_busy) {
      stats_.skipped++;
      log_->warn("checkpoint: step {} skipped, the save of step {} is still in flight "
                 "(checkpoint.when_busy = \"skip\")", meta.step, meta_.step);
      return false;
    }
    log_->info("checkpoint: step {} waits for the save of step {} in flight "
               "(checkpoint.when_busy = \"wait\")", meta.step, meta_.step);
    changed_.wait(lock, [this] { return !pending_; });
  }
  meta_ = meta;
  pending_ = true;
  phase_ = next;
  stats_.started++;
  stats_.blocked_ms += ms_since(t0);
  return true;
}

void checkpointer::ensure_buffers(size_t tensors, int64_t count) {
  snapshot_.resize(tensors);
  for (auto& b : snapshot_) b.resize(static_cast<size_t>(count));  // touched: zero-filled
}

void checkpointer::reserve(size_t tensors, int64_t count) {
  std::lock_guard lock(mutex_);
  LZ_CHECK(!pending_, "reserve() while a save is in flight");
  ensure_buffers(tensors, count);
}

std::optional<std::vector<float*>> checkpointer::begin_snapshot(
    const shard_meta& meta, const std::vector<std::string>& names) {
  if (!acquire(meta, phase::filling)) return std::nullopt;
  // The slot is ours: the worker does not touch the buffers until end_snapshot().
  ensure_buffers(names.size(), meta.range.size());
  names_ = names;
  std::vector<float*> out;
  for (auto& b : snapshot_) out.push_back(b.data());
  return out;
}

void checkpointer::end_snapshot() {
  {
    std::lock_guard lock(mutex_);
    LZ_CHECK(phase_ == phase::filling, "end_snapshot() without begin_snapshot()");
    phase_ = phase::writing;
  }
  changed_.notify_all();
  if (!options_.async) wait_idle();
}

void checkpointer::abandon_snapshot() {
  {
    std::lock_guard lock(mutex_);
    if (phase_ != phase::filling) return;
    pending_ = false;
    phase_ = phase::idle;
    stats_.started--;
  }
  changed_.notify_all();
}

bool checkpointer::save(const shard_meta& meta, const std::vector<tensor_source>& tensors) {
  if (!acquire(meta, phase::copying)) return false;
  {
    std::lock_guard lock(mutex_);
    sources_ = tensors;
  }
  changed_.notify_all();
  if (!options_.async) wait_idle();
  return true;
}

void checkpointer::wait_snapshot() {
  const auto t0 = std::chrono::steady_clock::now();
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [this] { return phase_ != phase::copying; });
  stats_.blocked_ms += ms_since(t0);
}

void checkpointer::wait_idle() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [this] { return !pending_; });
}

checkpointer_stats checkpointer::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void checkpointer::worker_loop() {
  // Writing, hashing and committing must not take CPU from the training threads.
  ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), 10);
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      changed_.wait(lock, [this] {
        return phase_ == phase::copying || phase_ == phase::writing || stopping_;
      });
      if (phase_ != phase::copying && phase_ != phase::writing) return;  // stopping
    }
    run_save();
    {
      std::lock_guard lock(mutex_);
      pending_ = false;
      phase_ = phase::idle;
    }
    changed_.notify_all();
  }
}

void checkpointer::run_save() {
  const shard_meta meta = meta_;
  const int64_t step = meta.step;
  // 1. snapshot (save() only: begin_snapshot's caller filled the buffers itself); the only
  // part the training step may wait for
  if (!sources_.empty()) {
    ensure_buffers(sources_.size(), meta.range.size());
    names_.clear();
    for (size_t i = 0; i < sources_.size(); i++) {
      LZ_CHECK(sources_[i].count == meta.range.size(), "tensor '{}'", sources_[i].name);
      std::memcpy(snapshot_[i].data(), sources_[i].data,
                  static_cast<size_t>(sources_[i].count) * sizeof(float));
      names_.push_back(sources_[i].name);
    }
    {
      std::lock_guard lock(mutex_);
      sources_.clear();
      phase_ = phase::writing;
    }
    changed_.notify_all();
  }
  std::vector<tensor_source> copies;
  for (size_t i = 0; i < names_.size(); i++) {
    copies.push_back({names_[i], snapshot_[i].data(), meta.range.size()});
  }
  fault_point("checkpoint.after_snapshot", step);

  // 2. write the shard durably, 3. commit, 4. retention
  const auto t0 = std::chrono::steady_clock::now();
  const std::string dir_name = checkpoint_dir_name(step);
  const fs::path dir = fs::path(options_.root_dir) / dir_name;
  const std::string file = fmt::format("shard_{:05d}_of_{:05d}.lzs", meta.rank, meta.world_size);
  bool recorded = false;  // the catalog knows this save is in flight
  try {
    catalog_.begin_save(step, dir_name);
    recorded = true;
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) LZ_THROW(io_error, "cannot create '{}': {}", dir.string(), ec.message());
    const shard_info info = write_shard((dir / file).string(), meta, copies);
    fsync_directory(options_.root_dir);
    checkpoint_record record;
    record.step = step;
    record.generation = meta.generation;
    record.world_size = meta.world_size;
    record.created_unix_ms = unix_ms_now();
    record.total_bytes = info.file_bytes;
    record.dir = dir_name;
    record.shards.push_back({meta.rank, dir_name + "/" + file, info.file_bytes,
                             info.header_xxh3, meta.range});
    catalog_.commit(record);
    const double ms = ms_since(t0);
    catalog_.append_event("checkpoint_committed", config::json_object()
                                                      .add("step", step)
                                                      .add("bytes", static_cast<int64_t>(info.file_bytes))
                                                      .add("write_ms", ms)
                                                      .str());
    {
      std::lock_guard lock(mutex_);
      stats_.committed++;
    }
    log_->info("g{} step {}: checkpoint committed, {:.1f} MiB in {:.0f} ms ({:.0f} MiB/s)",
               meta.generation, step, static_cast<double>(info.file_bytes) / (1 << 20), ms,
               static_cast<double>(info.file_bytes) / (1 << 20) / (ms / 1e3));
    apply_retention();
  } catch (const lz::error& e) {
    // Only a save the catalog recorded as in flight, and did not commit, is cleaned up; if
    // the catalog cannot say, the files stay and the next start's recover() decides.
    if (recorded) {
      try {
        if (!catalog_.get(step) || catalog_.get(step)->status != checkpoint_status::committed) {
          std::error_code ec;
          fs::remove_all(dir, ec);
          if (!ec) catalog_.abort_save(step);
        }
      } catch (const lz::error& e2) {
        log_->error("checkpoint: the catalog cannot say whether step {} committed ({}); its "
                    "files stay until the next start", step, e2.what());
      }
    }
    {
      std::lock_guard lock(mutex_);
      stats_.failed++;
    }
    log_->error("g{} step {}: checkpoint save failed, training goes on and the previous "
                "checkpoint stays the latest: {}", meta.generation, step, e.what());
    try {
      catalog_.append_event("save_failed",
                            config::json_object().add("step", step).add("error", e.what()).str());
    } catch (const lz::error& e2) {
      log_->error("checkpoint: could not record the failure in the catalog: {}", e2.what());
    }
  }
}

void checkpointer::apply_retention() {
  const retention_decision d = choose_deletions(catalog_.list(), options_.retention);
  for (int64_t step : d.delete_steps) {
    catalog_.begin_delete(step);
    const fs::path dir = fs::path(options_.root_dir) / checkpoint_dir_name(step);
    std::error_code ec;
    fs::remove_all(dir, ec);
    if (ec) {
      log_->error("checkpoint: removing '{}' failed ({}); it stays pending and is retried at "
                  "the next start", dir.string(), ec.message());
      continue;
    }
    catalog_.finish_delete(step);
  }
  if (!d.delete_steps.empty()) {
    log_->info("checkpoint: retention deleted {} checkpoint(s); {}", d.delete_steps.size(),
               d.reason);
  }
}

}  // namespace lz::checkpoint
