#include "checkpoint/restore.hpp"

#include <algorithm>
#include <climits>
#include <filesystem>

#include "config/json_writer.hpp"

namespace lz::checkpoint {

shard_set open_checkpoint(const checkpoint_record& record, const std::string& root_dir) {
  std::vector<std::string> paths;
  for (const shard_record& s : record.shards) {
    paths.push_back((std::filesystem::path(root_dir) / s.file).string());
  }
  shard_set set(paths);
  for (const shard_record& s : record.shards) {
    const shard_reader& reader = set.shard(s.rank);
    if (reader.info().header_xxh3 != s.header_xxh3) {
      LZ_THROW(format_error, "'{}' is not the shard the catalog committed for step {} (header "
               "checksum {:016x}, committed {:016x}): the file was replaced", reader.path(),
               record.step, reader.info().header_xxh3, s.header_xxh3);
    }
  }
  return set;
}

namespace {

// Records `failure` of checkpoint `step` in the catalog and the log: proof of damage marks
// it corrupt, anything else is only an event (an I/O error is not proof).
void record_failure(catalog& cat, const restore_failure& failure, const std::string& file,
                    const std::string& tensor, spdlog::logger& log) {
  if (failure.corrupt) {
    log.error("checkpoint: step {} is corrupt, shard '{}' tensor '{}': {}; falling back to "
              "the previous committed checkpoint", failure.step, file, tensor, failure.error);
    cat.mark_corrupt(failure.step, failure.error);
    cat.append_event("checkpoint_unusable", config::json_object()
                                                .add("step", failure.step)
                                                .add("file", file)
                                                .add("tensor", tensor)
                                                .add("error", failure.error)
                                                .str());
  } else {
    log.error("checkpoint: step {} cannot be read: {}; it is not marked corrupt (it may be "
              "readable later); falling back to the previous committed checkpoint",
              failure.step, failure.error);
    cat.append_event("checkpoint_unreadable", config::json_object()
                                                  .add("step", failure.step)
                                                  .add("error", failure.error)
                                                  .str());
  }
}

}  // namespace

void check_expectation(const shard_set& set, const std::string& root_dir,
                       const restore_expectation& expect) {
  if (set.meta().model != expect.model || set.meta().flat_total != expect.flat_total) {
    LZ_THROW(spec_error,
             "the checkpoints in '{}' are of model '{}' ({} parameters) but this run's spec "
             "describes '{}' ({} parameters): use another --state-dir (or checkpoint.dir) "
             "or the model.* keys of that run",
             root_dir, set.meta().model, set.meta().flat_total, expect.model,
             expect.flat_total);
  }
}

std::optional<restored_checkpoint> next_restore_point(catalog& cat, const std::string& root_dir,
                                                      const restore_expectation& expect,
                                                      int64_t before_step,
                                                      std::vector<restore_failure>& failures,
                                                      spdlog::logger& log) {
  std::vector<checkpoint_record> records = cat.list();
  std::reverse(records.begin(), records.end());  // newest first
  for (const checkpoint_record& record : records) {
    if (record.step >= before_step) continue;
    if (record.status != checkpoint_status::committed) {
      failures.push_back({record.step, true, "marked corrupt earlier: " + record.note});
      continue;
    }
    try {
      const shard_set set = open_checkpoint(record, root_dir);
      check_expectation(set, root_dir, expect);
      return restored_checkpoint{record, set.meta()};
    } catch (const corrupt_shard& e) {
      failures.push_back({record.step, true, e.what()});
      record_failure(cat, failures.back(), e.path(), e.tensor(), log);
    } catch (const spec_error&) {
      throw;
    } catch (const lz::error& e) {
      failures.push_back({record.step, false, e.what()});
      record_failure(cat, failures.back(), "", "", log);
    }
  }
  return std::nullopt;
}

void record_restore_failure(catalog& cat, const restore_failure& failure, spdlog::logger& log) {
  record_failure(cat, failure, "", "", log);
}

restore_outcome restore_latest(catalog& cat, const std::string& root_dir,
                               const std::vector<restore_target>& targets,
                               const restore_expectation& expect, spdlog::logger& log) {
  restore_outcome outcome;
  int64_t before = INT64_MAX;
  while (auto point = next_restore_point(cat, root_dir, expect, before, outcome.failures, log)) {
    const checkpoint_record& record = point->record;
    before = record.step;
    try {
      shard_set set = open_checkpoint(record, root_dir);
      for (const restore_target& t : targets) set.read(t.name, t.range, t.out);
      if (set.world_size() != 1 || record.world_size != 1) {
        log.info("checkpoint: step {} was saved by {} ranks; resharded by range", record.step,
                 set.world_size());
      }
      outcome.restored = std::move(point);
      return outcome;
    } catch (const corrupt_shard& e) {
      outcome.failures.push_back({record.step, true, e.what()});
      record_failure(cat, outcome.failures.back(), e.path(), e.tensor(), log);
    } catch (const lz::error& e) {  // missing or unreadable, another save's file, a newer format
      outcome.failures.push_back({record.step, false, e.what()});
      record_failure(cat, outcome.failures.back(), "", "", log);
    }
  }
  return outcome;
}

}  // namespace lz::checkpoint
