// catalog_rebuild.cpp: a new catalog from the shard files (see catalog_rebuild.hpp).
#include "checkpoint/catalog_rebuild.hpp"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <set>

#include "checkpoint/file_io.hpp"
#include "checkpoint/shard_set.hpp"
#include "config/json_writer.hpp"

namespace lz::checkpoint {

namespace {

namespace fs = std::filesystem;

int64_t mtime_unix_ms(const fs::path& path) {
  std::error_code ec;
  const auto t = fs::last_write_time(path, ec);
  if (ec) return 0;
  const auto sys = std::chrono::file_clock::to_sys(t);
  return std::chrono::duration_cast<std::chrono::milliseconds>(sys.time_since_epoch()).count();
}

// One checkpoint directory read back: a record, or why it is left alone.
struct scanned_dir {
  std::string dir;
  std::optional<checkpoint_record> record;
  std::string run_id;
  std::string why;
};

scanned_dir scan_dir(const fs::path& root, const std::string& dir) {
  scanned_dir out{dir, std::nullopt, "", ""};
  std::vector<std::string> files;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root / dir, ec)) {
    if (entry.path().extension() == ".lzs") files.push_back(entry.path().string());
  }
  if (ec) {
    out.why = "cannot be listed: " + ec.message();
    return out;
  }
  if (files.empty()) {
    out.why = "holds no finished shard file (a save that never completed one)";
    return out;
  }
  std::sort(files.begin(), files.end());
  try {
    shard_set set(files);
    set.verify_all();
    const shard_meta& meta = set.meta();
    if (dir != fmt::format("step_{:08d}", meta.step)) {
      out.why = fmt::format("its shards say step {}, which is not the directory's name", meta.step);
      return out;
    }
    checkpoint_record r;
    r.step = meta.step;
    r.generation = meta.generation;
    r.world_size = meta.world_size;
    r.dir = dir;
    r.verified = true;
    for (int64_t rank = 0; rank < set.world_size(); ++rank) {
      const shard_reader& shard = set.shard(rank);
      const fs::path file(shard.path());
      r.shards.push_back({static_cast<int32_t>(rank), dir + "/" + file.filename().string(),
                          shard.info().file_bytes, shard.info().header_xxh3,
                          shard.info().meta.range});
      r.total_bytes += shard.info().file_bytes;
      r.created_unix_ms = std::max(r.created_unix_ms, mtime_unix_ms(file));
    }
    out.run_id = meta.run_id;
    out.record = std::move(r);
  } catch (const lz::error& e) {
    out.why = e.what();
  }
  return out;
}

// What can still be read from the old catalog.
struct old_records {
  std::optional<std::string> spec, data;
  std::vector<event_record> events;
  std::map<int64_t, int64_t> created_unix_ms;  // by step
  bool readable = false;
};

old_records read_old(const std::string& state_dir) {
  old_records out;
  if (!catalog::exists(state_dir)) return out;
  try {
    auto old = catalog::open(state_dir, catalog_access::read_only);
    out.spec = old->meta(k_meta_spec);
    out.data = old->meta(k_meta_data);
    out.events = old->events();
    for (const auto& r : old->list()) out.created_unix_ms[r.step] = r.created_unix_ms;
    out.readable = true;
  } catch (const lz::error&) {
    // damaged: nothing is carried over, and it is kept as it is
  }
  return out;
}

}  // namespace

rebuild_report rebuild_catalog(const rebuild_options& options) {
  const fs::path root(options.root_dir);
  std::error_code ec;
  std::vector<std::string> dirs;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_directory() && name.starts_with("step_")) dirs.push_back(name);
  }
  if (ec) {
    LZ_THROW(io_error, "cannot list the checkpoint dir '{}': {}; pass the directory that holds "
             "the step_* directories with --checkpoint-dir; nothing was changed",
             options.root_dir, ec.message());
  }
  if (dirs.empty()) {
    LZ_THROW(io_error, "'{}' holds no step_* checkpoint directories, so there is nothing to "
             "rebuild the catalog from; pass the directory that holds them with "
             "--checkpoint-dir; nothing was changed", options.root_dir);
  }
  std::sort(dirs.begin(), dirs.end());

  // 1. Read everything and decide; nothing is written yet.
  rebuild_report report;
  std::vector<scanned_dir> scanned;
  std::set<std::string> run_ids;
  for (const std::string& d : dirs) {
    scanned.push_back(scan_dir(root, d));
    if (scanned.back().record) run_ids.insert(scanned.back().run_id);
  }
  if (run_ids.size() > 1) {
    std::string list;
    for (const auto& id : run_ids) list += (list.empty() ? "" : ", ") + id;
    LZ_THROW(io_error, "'{}' holds the checkpoints of {} runs ({}): a catalog belongs to one "
             "run; move the other runs' directories away first; nothing was changed",
             options.root_dir, run_ids.size(), list);
  }
  if (run_ids.empty() && !options.expect_run_id) {
    LZ_THROW(io_error, "'{}' holds no complete checkpoint and the state dir does not say which "
             "run it belongs to, so no catalog can be built; nothing was changed",
             options.root_dir);
  }
  report.run_id = run_ids.empty() ? *options.expect_run_id : *run_ids.begin();
  if (options.expect_run_id && *options.expect_run_id != report.run_id) {
    LZ_THROW(io_error, "the shards in '{}' belong to run {}, but the state dir '{}' is run {}: "
             "pass the checkpoint dir of this run with --checkpoint-dir; nothing was changed",
             options.root_dir, report.run_id, options.state_dir, *options.expect_run_id);
  }
  const old_records old = read_old(options.state_dir);

  // 2. Build the new catalog beside the old one; move the old one aside just before the
  // new one takes its place.
  const auto fill = [&](catalog& cat) {
    cat.set_meta(k_meta_checkpoint_root, options.root_dir);
    if (old.spec || options.spec_toml) cat.set_meta(k_meta_spec, old.spec ? *old.spec : *options.spec_toml);
    if (old.data) cat.set_meta(k_meta_data, *old.data);
    for (const event_record& e : old.events) cat.append_event_at(e.unix_ms, e.kind, e.json);
    for (scanned_dir& s : scanned) {
      if (s.record) {
        if (const auto it = old.created_unix_ms.find(s.record->step);
            it != old.created_unix_ms.end()) {
          s.record->created_unix_ms = it->second;
        }
        cat.commit(*s.record);
        report.added.push_back(*s.record);
      } else {
        cat.leave_alone(s.dir, s.why);
        report.left_alone.emplace_back(s.dir, s.why);
      }
    }
    cat.append_event("catalog_rebuilt",
                     config::json_object()
                         .add("checkpoint_root", options.root_dir)
                         .add("added", static_cast<int64_t>(report.added.size()))
                         .add("left_alone", static_cast<int64_t>(report.left_alone.size()))
                         .str());
  };
  const auto move_old_aside = [&] {
    if (!catalog::exists(options.state_dir)) return;
    report.old_catalog =
        (fs::path(options.state_dir) / ("catalog.replaced-" + utc_file_stamp())).string();
    std::error_code move_ec;
    fs::rename(fs::path(options.state_dir) / "catalog", report.old_catalog, move_ec);
    if (move_ec) {
      LZ_THROW(io_error, "cannot move the old catalog to '{}': {}; nothing was changed",
               report.old_catalog, move_ec.message());
    }
  };
  catalog::create(options.state_dir, report.run_id, fill, move_old_aside);
  report.carried_over = old.readable;
  report.events_carried = static_cast<int64_t>(old.events.size());
  return report;
}

}  // namespace lz::checkpoint
