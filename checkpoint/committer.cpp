// committer.cpp: one owner of the commit protocol (see committer.hpp).
#include "checkpoint/committer.hpp"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <set>

#include <fmt/format.h>

#include "checkpoint/fault_hook.hpp"
#include "config/error.hpp"
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

std::string checkpoint_dir_name(int64_t step) { return fmt::format("step_{:08d}", step); }

std::string shard_file_name(int32_t rank, int32_t world) {
  return fmt::format("shard_{:05d}_of_{:05d}.lzs", rank, world);
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

committer::committer(catalog& cat, const committer_options& options,
                     std::shared_ptr<spdlog::logger> log)
  : catalog_(cat), options_(options), log_(std::move(log)) {
  std::error_code ec;
  fs::create_directories(options_.root_dir, ec);
  if (ec) {
    LZ_THROW(io_error, "cannot create checkpoint dir '{}': {}; set checkpoint.dir to a "
             "writable directory", options_.root_dir, ec.message());
  }
}

void committer::recover() {
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

bool committer::begin(int64_t step, int32_t world, int64_t generation) {
  std::unique_lock lock(mutex_);
  return *decide_begin(lock, step, world, generation, true);
}

std::optional<bool> committer::try_begin(int64_t step, int32_t world, int64_t generation) {
  std::unique_lock lock(mutex_);
  return decide_begin(lock, step, world, generation, false);
}

std::optional<int64_t> committer::step_in_flight() const {
  std::lock_guard lock(mutex_);
  if (!inflight_) return std::nullopt;
  return inflight_->step;
}

std::optional<bool> committer::decide_begin(std::unique_lock<std::mutex>& lock, int64_t step,
                                            int32_t world, int64_t generation, bool may_wait) {
  const auto t0 = std::chrono::steady_clock::now();
  const auto decide = [&](bool go) {
    decided_[{generation, step}] = go;
    while (decided_.size() > 4) decided_.erase(decided_.begin());
    return go;
  };
  if (const auto it = decided_.find({generation, step}); it != decided_.end()) return it->second;
  if (const auto existing = catalog_.get(step);
      existing && existing->status == checkpoint_status::committed) {
    stats_.skipped++;
    log_->info("checkpoint: step {} is already committed; a committed checkpoint is never "
               "overwritten", step);
    return decide(false);
  }
  if (inflight_) {
    if (options_.skip_when_busy) {
      stats_.skipped++;
      log_->warn("checkpoint: step {} skipped, the save of step {} is still in flight "
                 "(checkpoint.when_busy = \"skip\")", step, inflight_->step);
      return decide(false);
    }
    if (!may_wait) return std::nullopt;
    log_->info("checkpoint: step {} waits for the save of step {} in flight "
               "(checkpoint.when_busy = \"wait\")", step, inflight_->step);
    wait_or_throw(changed_, lock, options_.wait_timeout,
                  [&] { return !inflight_ || decided_.count({generation, step}) != 0; },
                  fmt::format("the end of the save of step {} in flight", inflight_->step));
    stats_.blocked_ms += ms_since(t0);
    if (const auto it = decided_.find({generation, step}); it != decided_.end()) return it->second;
  }
  try {
    catalog_.begin_save(step, checkpoint_dir_name(step));
  } catch (const lz::error& e) {
    stats_.skipped++;
    log_->error("g{} step {}: checkpoint skipped, it could not be recorded in the catalog: {}",
                generation, step, e.what());
    return decide(false);
  }
  inflight_ = save_in_flight{step, world, generation, {}, {}, std::chrono::steady_clock::now()};
  stats_.started++;
  return decide(true);
}

void committer::shard_durable(int64_t step, const shard_record& shard) {
  std::lock_guard lock(mutex_);
  LZ_CHECK(inflight_ && inflight_->step == step, "a shard of step {} that is not in flight",
           step);
  inflight_->durable.push_back(shard);
  if (inflight_->durable.size() + inflight_->errors.size() ==
      static_cast<size_t>(inflight_->world)) {
    finish();
  }
}

void committer::shard_failed(int64_t step, int32_t rank, const std::string& error) {
  std::lock_guard lock(mutex_);
  LZ_CHECK(inflight_ && inflight_->step == step, "a shard of step {} that is not in flight",
           step);
  inflight_->errors.push_back(fmt::format("rank {}: {}", rank, error));
  if (inflight_->durable.size() + inflight_->errors.size() ==
      static_cast<size_t>(inflight_->world)) {
    finish();
  }
}

std::optional<int64_t> committer::abandon_older_than(int64_t generation, const std::string& why) {
  std::lock_guard lock(mutex_);
  if (!inflight_ || inflight_->generation >= generation) return std::nullopt;
  const int64_t step = inflight_->step;
  inflight_->errors.push_back(why);
  finish();
  return step;
}

void committer::finish() {
  save_in_flight save = std::move(*inflight_);
  const std::string dir_name = checkpoint_dir_name(save.step);
  if (save.errors.empty()) {
    checkpoint_record record;
    record.step = save.step;
    record.generation = save.generation;
    record.world_size = save.world;
    record.created_unix_ms = unix_ms_now();
    record.dir = dir_name;
    std::sort(save.durable.begin(), save.durable.end(),
              [](const shard_record& a, const shard_record& b) { return a.rank < b.rank; });
    for (const shard_record& s : save.durable) record.total_bytes += s.bytes;
    record.shards = save.durable;
    try {
      catalog_.commit(record);
      const double ms = ms_since(save.started);
      catalog_.append_event("checkpoint_committed",
                            config::json_object()
                                .add("step", save.step)
                                .add("world_size", int64_t{save.world})
                                .add("bytes", static_cast<int64_t>(record.total_bytes))
                                .add("write_ms", ms)
                                .str());
      stats_.committed++;
      log_->info("g{} step {}: checkpoint committed, {} shard(s), {:.1f} MiB in {:.0f} ms",
                 save.generation, save.step, save.world,
                 static_cast<double>(record.total_bytes) / (1 << 20), ms);
      apply_retention();
    } catch (const lz::error& e) {
      save.errors.push_back(fmt::format("the commit failed: {}", e.what()));
    }
  }
  if (!save.errors.empty()) {
    std::string why;
    for (const auto& e : save.errors) why += (why.empty() ? "" : "; ") + e;
    stats_.failed++;
    log_->error("g{} step {}: checkpoint save failed, training goes on and the previous "
                "checkpoint stays the latest: {}", save.generation, save.step, why);
    try {
      // Only a save the catalog recorded in flight and did not commit is cleaned up.
      const auto existing = catalog_.get(save.step);
      if (!existing || existing->status != checkpoint_status::committed) {
        std::error_code ec;
        fs::remove_all(fs::path(options_.root_dir) / dir_name, ec);
        if (!ec) catalog_.abort_save(save.step);
      }
      catalog_.append_event("save_failed",
                            config::json_object().add("step", save.step).add("error", why).str());
    } catch (const lz::error& e2) {
      log_->error("checkpoint: the catalog cannot record the failure of step {} ({}); its "
                  "files stay until the next start", save.step, e2.what());
    }
  }
  inflight_.reset();
  changed_.notify_all();
}

void committer::apply_retention() {
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

void committer::wait_idle() {
  std::unique_lock lock(mutex_);
  if (!inflight_) return;
  wait_or_throw(changed_, lock, options_.wait_timeout, [this] { return !inflight_; },
                fmt::format("the end of the save of step {}", inflight_->step));
}

committer_stats committer::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

}  // namespace lz::checkpoint
