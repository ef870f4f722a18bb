#include "actors/ckpt_commands.hpp"

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include <fmt/format.h>

#include "actors/model_descriptor.hpp"
#include "actors/run_files.hpp"
#include "actors/run_state.hpp"
#include "checkpoint/catalog.hpp"
#include "checkpoint/catalog_rebuild.hpp"
#include "checkpoint/committer.hpp"
#include "checkpoint/restore.hpp"
#include "checkpoint/llmc_format.hpp"
#include "checkpoint/shard_set.hpp"
#include "config/json_writer.hpp"

namespace lz::actors {

namespace {

namespace fs = std::filesystem;
using checkpoint::checkpoint_record;
using checkpoint::checkpoint_status;

// Where the checkpoints of the state dir's run are: --checkpoint-dir (the directory holding
// the step_* directories, or the run's checkpoint.dir that holds it as RUN_ID/), else where
// the catalog recorded them, else STATE_DIR/checkpoints (a state dir moved as a whole, or
// written by an older Lazarus).
std::string root_of(const ckpt_command_options& o, const std::string& run_id,
                    const std::optional<std::string>& recorded) {
  if (!o.checkpoint_dir.empty()) {
    if (checkpoint::has_checkpoint_dirs(o.checkpoint_dir) || run_id.empty()) return o.checkpoint_dir;
    return checkpoint_root(o.state_dir, o.checkpoint_dir, run_id);
  }
  const std::string local = checkpoint_root(o.state_dir, "", "");
  if (recorded && (fs::exists(*recorded) || !fs::exists(local))) return *recorded;
  return local;
}

std::string root_of(const ckpt_command_options& o, const checkpoint::catalog& cat) {
  return root_of(o, cat.run_id().value_or(""), cat.meta(checkpoint::k_meta_checkpoint_root));
}

// Read commands open the catalog read-only: no lock, no writes, so they work on a live run
// and on an archived, read-only state dir.
std::unique_ptr<checkpoint::catalog> open_catalog(
    const ckpt_command_options& o,
    checkpoint::catalog_access access = checkpoint::catalog_access::read_only) {
  return checkpoint::catalog::open(o.state_dir, access);
}

std::string iso_time(int64_t unix_ms) {
  const std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

const char* status_name(checkpoint_status s) {
  return s == checkpoint_status::committed ? "committed" : "corrupt";
}

checkpoint_record require_step(const checkpoint::catalog& cat, const ckpt_command_options& o) {
  if (!o.step) {
    const auto latest = cat.latest();
    if (!latest) LZ_THROW(io_error, "'{}' holds no committed checkpoint", o.state_dir);
    return *latest;
  }
  const auto r = cat.get(*o.step);
  if (!r) {
    LZ_THROW(spec_error, "'{}' has no checkpoint at step {}: `lazarus ckpt ls {}` lists them",
             o.state_dir, *o.step, o.state_dir);
  }
  return *r;
}

// Appends one item to a JSON array under construction ("[" ... without the "]").
void append_item(std::string& array, const std::string& item) {
  if (array.size() > 1) array += ',';
  array += item;
}

}  // namespace

int ckpt_ls(const ckpt_command_options& o) {
  auto cat = open_catalog(o);
  const auto records = cat->list();
  if (!o.json) {
    std::printf("%-8s %-20s %12s %6s %-10s %s\n", "step", "time (UTC)", "bytes", "world",
                "status", "verified");
  }
  for (const auto& r : records) {
    if (o.json) {
      std::printf("%s\n", config::json_object()
                              .add("step", r.step)
                              .add("time", iso_time(r.created_unix_ms))
                              .add("bytes", static_cast<int64_t>(r.total_bytes))
                              .add("world_size", int64_t{r.world_size})
                              .add("generation", r.generation)
                              .add("status", status_name(r.status))
                              .add("verified", r.verified)
                              .add("note", r.note)
                              .str()
                              .c_str());
    } else {
      std::printf("%-8lld %-20s %12llu %6d %-10s %s\n", static_cast<long long>(r.step),
                  iso_time(r.created_unix_ms).c_str(),
                  static_cast<unsigned long long>(r.total_bytes), r.world_size,
                  status_name(r.status), r.verified ? "yes" : "no");
    }
  }
  if (!o.json && records.empty()) std::printf("(no checkpoints)\n");
  return 0;
}

int ckpt_verify(const ckpt_command_options& o) {
  // Verify records what it finds; on a read-only state dir, or beside the live run that
  // holds the catalog, it still checks, and says that nothing was recorded.
  std::unique_ptr<checkpoint::catalog> cat;
  bool record = true;
  try {
    cat = open_catalog(o, checkpoint::catalog_access::read_write);
  } catch (const lz::io_error& e) {
    const std::string what = e.what();
    const bool read_only = what.find("read-only") != std::string::npos;
    if (!read_only && what.find("another process holds") == std::string::npos) throw;
    cat = open_catalog(o);
    record = false;
    std::fprintf(stderr, "lazarus: %s: checking without recording the results in the catalog\n",
                 read_only ? "the state dir is read-only" : "a run holds the catalog");
  }
  const std::string root = root_of(o, *cat);
  std::vector<checkpoint_record> todo;
  if (o.step) {
    todo.push_back(require_step(*cat, o));
  } else {
    todo = cat->list();
  }
  int failures = 0;
  for (const auto& r : todo) {
    std::string error, file, tensor;
    bool corrupt = false;
    try {
      checkpoint::open_checkpoint(r, root).verify_all();
    } catch (const checkpoint::corrupt_shard& e) {  // proof of damage
      error = e.what();
      file = e.path();
      tensor = e.tensor();
      corrupt = true;
    } catch (const lz::error& e) {  // missing, unreadable, another save's: not proof
      error = e.what();
    }
    if (record && error.empty()) {
      cat->mark_verified(r.step);
      if (r.status == checkpoint_status::corrupt) {
        cat->append_event("verify_cleared", config::json_object()
                                                .add("step", r.step)
                                                .add("was", r.note)
                                                .str());
      }
    } else if (record && corrupt) {
      cat->mark_corrupt(r.step, error);
      cat->append_event("verify_failed", config::json_object()
                                             .add("step", r.step)
                                             .add("file", file)
                                             .add("tensor", tensor)
                                             .add("error", error)
                                             .str());
    }
    if (!error.empty()) failures++;
    const char* verdict = error.empty() ? "ok" : corrupt ? "corrupt" : "unreadable";
    if (o.json) {
      std::printf("%s\n", config::json_object()
                              .add("step", r.step)
                              .add("ok", error.empty())
                              .add("verdict", verdict)
                              .add("file", file)
                              .add("tensor", tensor)
                              .add("error", error)
                              .str()
                              .c_str());
    } else if (error.empty()) {
      std::printf("step %lld: ok (%zu shard%s, every checksum matches)\n",
                  static_cast<long long>(r.step), r.shards.size(), r.shards.size() == 1 ? "" : "s");
    } else if (corrupt) {
      std::printf("step %lld: CORRUPT shard %s tensor %s: %s\n", static_cast<long long>(r.step),
                  file.c_str(), tensor.c_str(), error.c_str());
    } else {
      std::printf("step %lld: UNREADABLE (not marked corrupt; fix the path or the disk and "
                  "verify again): %s\n", static_cast<long long>(r.step), error.c_str());
    }
  }
  return failures == 0 ? 0 : 1;
}

int ckpt_events(const ckpt_command_options& o) {
  auto cat = open_catalog(o);
  const auto events = cat->events();
  for (const auto& e : events) {
    if (o.json) {
      std::printf("%s\n", config::json_object()
                              .add("seq", e.seq)
                              .add("time", iso_time(e.unix_ms))
                              .add("kind", e.kind)
                              .add_raw("detail", e.json.empty() ? "{}" : e.json)
                              .str()
                              .c_str());
    } else {
      std::printf("%-6lld %-20s %-22s %s\n", static_cast<long long>(e.seq),
                  iso_time(e.unix_ms).c_str(), e.kind.c_str(), e.json.c_str());
    }
  }
  if (!o.json && events.empty()) std::printf("(no events)\n");
  return 0;
}

int ckpt_rebuild_catalog(const ckpt_command_options& o) {
  checkpoint::rebuild_options options;
  options.state_dir = o.state_dir;
  std::optional<std::string> recorded_root;
  std::string run_id;
  if (const auto id = read_run_identity(o.state_dir)) {
    run_id = id->run_id;
    options.expect_run_id = id->run_id;
    recorded_root = id->checkpoint_root;
  }
  options.root_dir = fs::absolute(root_of(o, run_id, recorded_root)).lexically_normal().string();
  if (!recorded_root && checkpoint::catalog::exists(o.state_dir)) {
    try {  // a damaged catalog may still say where its checkpoints are
      recorded_root = open_catalog(o)->meta(checkpoint::k_meta_checkpoint_root);
    } catch (const lz::error&) {
    }
  }
  if (std::ifstream spec(spec_path(o.state_dir)); spec) {
    std::stringstream text;
    text << spec.rdbuf();
    options.spec_toml = text.str();
  }
  const checkpoint::rebuild_report report = checkpoint::rebuild_catalog(options);
  write_run_identity(o.state_dir, {report.run_id, options.root_dir});
  std::printf("rebuilt the catalog of run %s from %s:\n", report.run_id.c_str(),
              options.root_dir.c_str());
  for (const auto& r : report.added) {
    std::printf("  step %lld: %d shard(s), verified, added\n", static_cast<long long>(r.step),
                r.world_size);
  }
  for (const auto& [dir, why] : report.left_alone) {
    std::printf("  %s: left where it is, not a checkpoint: %s\n", dir.c_str(), why.c_str());
  }
  if (!report.old_catalog.empty()) {
    std::printf("the old catalog is kept as %s (%s)\n", report.old_catalog.c_str(),
                report.carried_over
                    ? fmt::format("its spec, data fingerprint and {} events were carried over",
                                  report.events_carried).c_str()
                    : "it could not be read, so nothing was carried over");
  }
  return report.added.empty() ? 1 : 0;
}

int ckpt_inspect(const ckpt_command_options& o) {
  auto cat = open_catalog(o);
  const checkpoint_record r = require_step(*cat, o);
  checkpoint::shard_set set = checkpoint::open_checkpoint(r, root_of(o, *cat));
  const auto& m = set.meta();
  if (!o.json) {
    std::printf("checkpoint step %lld (%s%s)\n  run %s, generation %lld, saved by %d rank(s)\n"
                "  model %s, %lld parameters, data seed %llu\n  created %s, %llu bytes in %s\n",
                static_cast<long long>(r.step), status_name(r.status),
                r.verified ? ", verified" : "", m.run_id.c_str(),
                static_cast<long long>(r.generation), r.world_size, m.model.c_str(),
                static_cast<long long>(m.flat_total), static_cast<unsigned long long>(m.data_seed),
                iso_time(r.created_unix_ms).c_str(), static_cast<unsigned long long>(r.total_bytes),
                (fs::path(root_of(o, *cat)) / r.dir).string().c_str());
  }
  std::string shards_json = "[";
  for (const auto& s : r.shards) {
    checkpoint::shard_reader reader((fs::path(root_of(o, *cat)) / s.file).string());
    const auto& info = reader.info();
    std::string tensors_json = "[";
    if (!o.json) {
      std::printf("  shard rank %d: %s, %llu bytes, elements [%lld, %lld)\n", s.rank,
                  s.file.c_str(), static_cast<unsigned long long>(s.bytes),
                  static_cast<long long>(s.range.begin), static_cast<long long>(s.range.end));
    }
    for (const auto& t : info.tensors) {
      if (o.json) {
        append_item(tensors_json, config::json_object()
                            .add("name", t.name)
                            .add("dtype", t.dtype)
                            .add("offset", static_cast<int64_t>(t.offset))
                            .add("bytes", static_cast<int64_t>(t.bytes))
                            .add("xxh3", fmt::format("{:016x}", t.xxh3))
                            .add("chunks", static_cast<int64_t>(t.chunk_xxh3.size()))
                            .str());
      } else {
        std::printf("    %-8s %-4s offset %12llu bytes %12llu xxh3 %016llx (%zu chunks)\n",
                    t.name.c_str(), t.dtype.c_str(), static_cast<unsigned long long>(t.offset),
                    static_cast<unsigned long long>(t.bytes),
                    static_cast<unsigned long long>(t.xxh3), t.chunk_xxh3.size());
      }
    }
    tensors_json += "]";
    append_item(shards_json, config::json_object()
                       .add("rank", int64_t{s.rank})
                       .add("file", s.file)
                       .add("bytes", static_cast<int64_t>(s.bytes))
                       .add("range_begin", s.range.begin)
                       .add("range_end", s.range.end)
                       .add_raw("tensors", tensors_json)
                       .str());
  }
  shards_json += "]";
  if (o.json) {
    std::printf("%s\n", config::json_object()
                            .add("step", r.step)
                            .add("status", status_name(r.status))
                            .add("verified", r.verified)
                            .add("run_id", m.run_id)
                            .add("generation", r.generation)
                            .add("world_size", int64_t{r.world_size})
                            .add("model", m.model)
                            .add("params", m.flat_total)
                            .add("data_seed", static_cast<int64_t>(m.data_seed))
                            .add("time", iso_time(r.created_unix_ms))
                            .add("bytes", static_cast<int64_t>(r.total_bytes))
                            .add_raw("shards", shards_json)
                            .str()
                            .c_str());
  }
  return 0;
}

int ckpt_export_llmc(const ckpt_command_options& o, const std::string& out_path) {
  checkpoint::llmc_header header;
  std::vector<float> params;
  std::string from;
  if (!o.step && fs::exists(final_model_path(o.state_dir))) {
    checkpoint::llmc_model m = checkpoint::read_llmc_model(final_model_path(o.state_dir));
    header = m.header;
    params = std::move(m.params);
    from = final_model_path(o.state_dir);
  } else {
    auto cat = open_catalog(o);
    const checkpoint_record r = require_step(*cat, o);
    checkpoint::shard_set set = checkpoint::open_checkpoint(r, root_of(o, *cat));
    header = llmc_header_of(parse_model_descriptor(set.meta().model));
    params.resize(static_cast<size_t>(set.meta().flat_total));
    set.read("params", {0, set.meta().flat_total}, params.data());
    from = fmt::format("checkpoint step {}", r.step);
  }
  checkpoint::write_llmc_model(out_path, header, params.data(), static_cast<int64_t>(params.size()));
  std::printf("exported %zu parameters (L %d C %d NH %d Vp %d) from %s to %s\n", params.size(),
              header.layers, header.channels, header.heads, header.padded_vocab_size,
              from.c_str(), out_path.c_str());
  return 0;
}

}  // namespace lz::actors
