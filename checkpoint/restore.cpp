#include "checkpoint/restore.hpp"

#include <algorithm>
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

restore_outcome restore_latest(catalog& cat, const std::string& root_dir,
                               const std::vector<restore_target>& targets,
                               const restore_expectation& expect, spdlog::logger& log) {
  std::vector<checkpoint_record> records = cat.list();
  std::reverse(records.begin(), records.end());  // newest first
  restore_outcome outcome;
  for (const checkpoint_record& record : records) {
    if (record.status != checkpoint_status::committed) {
      outcome.failures.push_back({record.step, true, "marked corrupt earlier: " + record.note});
      continue;
    }
    try {
      shard_set set = open_checkpoint(record, root_dir);
      if (set.meta().model != expect.model || set.meta().flat_total != expect.flat_total) {
        LZ_THROW(spec_error,
                 "the checkpoints in '{}' are of model '{}' ({} parameters) but this run's spec "
                 "describes '{}' ({} parameters): use another --state-dir (or checkpoint.dir) "
                 "or the model.* keys of that run",
                 root_dir, set.meta().model, set.meta().flat_total, expect.model,
                 expect.flat_total);
      }
      for (const restore_target& t : targets) set.read(t.name, t.range, t.out);
      if (set.world_size() != 1 || record.world_size != 1) {
        log.info("checkpoint: step {} was saved by {} ranks; resharded by range", record.step,
                 set.world_size());
      }
      outcome.restored = restored_checkpoint{record, set.meta()};
      return outcome;
    } catch (const corrupt_shard& e) {
      log.error("checkpoint: step {} is corrupt, shard '{}' tensor '{}': {}; falling back to "
                "the previous committed checkpoint", record.step, e.path(), e.tensor(),
                e.what());
      cat.mark_corrupt(record.step, e.what());
      cat.append_event("checkpoint_unusable", config::json_object()
                                                  .add("step", record.step)
                                                  .add("file", e.path())
                                                  .add("tensor", e.tensor())
                                                  .add("error", e.what())
                                                  .str());
      outcome.failures.push_back({record.step, true, e.what()});
    } catch (const spec_error&) {
      throw;
    } catch (const lz::error& e) {  // missing or unreadable, another save's file, a newer format
      log.error("checkpoint: step {} cannot be read: {}; it is not marked corrupt (it may be "
                "readable later); falling back to the previous committed checkpoint",
                record.step, e.what());
      cat.append_event("checkpoint_unreadable",
                       config::json_object().add("step", record.step).add("error", e.what()).str());
      outcome.failures.push_back({record.step, false, e.what()});
    }
  }
  return outcome;
}

}  // namespace lz::checkpoint
