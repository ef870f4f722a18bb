#include "checkpoint/checkpointer.hpp"

#include <chrono>
#include <cstring>
#include <filesystem>
#include <optional>

#include <sys/resource.h>
#include <unistd.h>

#include <fmt/format.h>

#include "checkpoint/fault_hook.hpp"
#include "checkpoint/file_io.hpp"

namespace lz::checkpoint {

namespace fs = std::filesystem;

namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

checkpointer::checkpointer(commit_protocol& commit, const checkpointer_options& options,
                           std::shared_ptr<spdlog::logger> log)
  : committer_(commit), options_(options), log_(std::move(log)) {
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

bool checkpointer::acquire(const shard_meta& meta, phase next) {
  if (!committer_.begin(meta.step, meta.world_size, meta.generation)) return false;
  std::unique_lock lock(mutex_);
  // The committer allows one save in flight: this rank's previous one has been reported.
  wait_or_throw(changed_, lock, options_.wait_timeout, [this] { return !pending_; },
                "the report of this rank's previous save");
  meta_ = meta;
  pending_ = true;
  phase_ = next;
  stats_.started++;
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

void checkpointer::end_snapshot_by_copy(const std::vector<tensor_source>& tensors) {
  {
    std::lock_guard lock(mutex_);
    LZ_CHECK(phase_ == phase::filling, "end_snapshot_by_copy() without begin_snapshot()");
    sources_ = tensors;
    phase_ = phase::copying;
  }
  changed_.notify_all();
  if (!options_.async) wait_idle();
}

void checkpointer::abandon_snapshot() {
  shard_meta meta;
  {
    std::lock_guard lock(mutex_);
    if (phase_ != phase::filling) return;
    meta = meta_;
    pending_ = false;
    phase_ = phase::idle;
    stats_.failed++;
  }
  changed_.notify_all();
  committer_.shard_failed(meta.step, meta.rank, "the snapshot was abandoned");
}

bool checkpointer::snapshot_open() const {
  std::lock_guard lock(mutex_);
  return phase_ == phase::filling;
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
  wait_or_throw(changed_, lock, options_.wait_timeout,
                [this] { return phase_ != phase::copying; }, "the copy of a snapshot");
  stats_.blocked_ms += ms_since(t0);
}

void checkpointer::wait_idle() {
  std::unique_lock lock(mutex_);
  wait_or_throw(changed_, lock, options_.wait_timeout, [this] { return !pending_; },
                "the end of this rank's save");
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
  fault_point("checkpoint.after_snapshot", step, meta.rank);

  // 2. write this rank's shard durably, 3. report it to the committer
  const auto t0 = std::chrono::steady_clock::now();
  const std::string dir_name = checkpoint_dir_name(step);
  const fs::path dir = fs::path(committer_.root_dir()) / dir_name;
  const std::string file = shard_file_name(meta.rank, meta.world_size);
  std::optional<shard_record> durable;
  std::string error;
  try {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) LZ_THROW(io_error, "cannot create '{}': {}", dir.string(), ec.message());
    const shard_info info = write_shard((dir / file).string(), meta, copies);
    fsync_directory(dir.string());
    fsync_directory(committer_.root_dir());
    durable = shard_record{meta.rank, dir_name + "/" + file, info.file_bytes, info.header_xxh3,
                           meta.range};
    log_->debug("g{} step {}: rank {} shard durable, {:.1f} MiB in {:.0f} ms", meta.generation,
                step, meta.rank, static_cast<double>(info.file_bytes) / (1 << 20), ms_since(t0));
  } catch (const lz::error& e) {
    error = e.what();
    std::error_code ec;
    fs::remove(dir / file, ec);  // this rank's file only; the committer decides the rest
  }
  {
    std::lock_guard lock(mutex_);
    (durable ? stats_.durable : stats_.failed)++;
  }
  if (durable) {
    committer_.shard_durable(step, *durable);
  } else {
    committer_.shard_failed(step, meta.rank, error);
  }
}

}  // namespace lz::checkpoint
