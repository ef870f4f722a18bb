#include "actors/ckpt_commands.hpp"

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <vector>

#include <fmt/format.h>

#include "actors/model_descriptor.hpp"
#include "actors/run_files.hpp"
#include "checkpoint/catalog.hpp"
#include "checkpoint/llmc_format.hpp"
#include "checkpoint/shard_set.hpp"
#include "config/json_writer.hpp"

namespace lz::actors {

namespace {

namespace fs = std::filesystem;
using checkpoint::checkpoint_record;
using checkpoint::checkpoint_status;

std::string root_of(const ckpt_command_options& o, const checkpoint::catalog& cat) {
  return checkpoint_root(o.state_dir, o.checkpoint_dir, cat.run_id().value_or(""));
}

std::unique_ptr<checkpoint::catalog> open_catalog(const ckpt_command_options& o) {
  if (!fs::exists(fs::path(o.state_dir) / "catalog")) {
    LZ_THROW(io_error, "'{}' has no checkpoint catalog ({}/catalog): is it the --state-dir of "
             "a run?", o.state_dir, o.state_dir);
  }
  return checkpoint::catalog::open(o.state_dir);
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

std::vector<std::string> shard_paths(const ckpt_command_options& o,
                                     const checkpoint::catalog& cat, const checkpoint_record& r) {
  std::vector<std::string> paths;
  for (const auto& s : r.shards) paths.push_back((fs::path(root_of(o, cat)) / s.file).string());
  return paths;
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
  auto cat = open_catalog(o);
  std::vector<checkpoint_record> todo;
  if (o.step) {
    todo.push_back(require_step(*cat, o));
  } else {
    todo = cat->list();
  }
  int failures = 0;
  for (const auto& r : todo) {
    std::string error, file, tensor;
    try {
      checkpoint::shard_set set(shard_paths(o, *cat, r));
      set.verify_all();
      cat->mark_verified(r.step);
    } catch (const checkpoint::corrupt_shard& e) {
      error = e.what();
      file = e.path();
      tensor = e.tensor();
    } catch (const lz::error& e) {
      error = e.what();
    }
    if (!error.empty()) {
      failures++;
      cat->mark_corrupt(r.step, error);
      cat->append_event("verify_failed", config::json_object()
                                             .add("step", r.step)
                                             .add("file", file)
                                             .add("tensor", tensor)
                                             .add("error", error)
                                             .str());
    }
    if (o.json) {
      std::printf("%s\n", config::json_object()
                              .add("step", r.step)
                              .add("ok", error.empty())
                              .add("file", file)
                              .add("tensor", tensor)
                              .add("error", error)
                              .str()
                              .c_str());
    } else if (error.empty()) {
      std::printf("step %lld: ok (%zu shard%s, every checksum matches)\n",
                  static_cast<long long>(r.step), r.shards.size(), r.shards.size() == 1 ? "" : "s");
    } else {
      std::printf("step %lld: FAILED%s%s%s%s: %s\n", static_cast<long long>(r.step),
                  file.empty() ? "" : " shard ", file.c_str(), tensor.empty() ? "" : " tensor ",
                  tensor.c_str(), error.c_str());
    }
  }
  return failures == 0 ? 0 : 1;
}

int ckpt_inspect(const ckpt_command_options& o) {
  auto cat = open_catalog(o);
  const checkpoint_record r = require_step(*cat, o);
  checkpoint::shard_set set(shard_paths(o, *cat, r));
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
    checkpoint::shard_set set(shard_paths(o, *cat, r));
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
