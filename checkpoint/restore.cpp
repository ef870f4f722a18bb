#include "checkpoint/restore.hpp"

#include <algorithm>
#include <filesystem>

#include "checkpoint/shard_set.hpp"
#include "config/json_writer.hpp"

namespace lz::checkpoint {

std::optional<restored_checkpoint> restore_latest(catalog& cat, const std::string& root_dir,
                                                  flat_range want,
                                                  const std::vector<restore_target>& targets,
                                                  const restore_expectation& expect,
                                                  spdlog::logger& log) {
  std::vector<checkpoint_record> records = cat.list();
  std::reverse(records.begin(), records.end());  // newest first
  for (const checkpoint_record& record : records) {
    if (record.status != checkpoint_status::committed) continue;
    std::vector<std::string> paths;
    for (const shard_record& s : record.shards) {
      paths.push_back((std::filesystem::path(root_dir) / s.file).string());
    }
    std::string file, tensor;
    try {
      shard_set set(paths);
      if (set.meta().model != expect.model || set.meta().flat_total != expect.flat_total) {
        LZ_THROW(spec_error,
                 "the checkpoints in '{}' are of model '{}' ({} parameters) but this run's spec "
                 "describes '{}' ({} parameters): use another --state-dir (or checkpoint.dir) "
                 "or the model.* keys of that run",
                 root_dir, set.meta().model, set.meta().flat_total, expect.model,
                 expect.flat_total);
      }
      for (const restore_target& t : targets) set.read(t.name, want, t.out);
      if (set.world_size() != 1 || record.world_size != 1) {
        log.info("checkpoint: step {} was saved by {} ranks; resharded by range", record.step,
                 set.world_size());
      }
      return restored_checkpoint{record, set.meta()};
    } catch (const corrupt_shard& e) {
      file = e.path();
      tensor = e.tensor();
      log.error("checkpoint: step {} is unusable, shard '{}' tensor '{}': {}; falling back to "
                "the previous committed checkpoint", record.step, file, tensor, e.what());
      cat.mark_corrupt(record.step, e.what());
      cat.append_event("checkpoint_unusable", config::json_object()
                                                  .add("step", record.step)
                                                  .add("file", file)
                                                  .add("tensor", tensor)
                                                  .add("error", e.what())
                                                  .str());
    } catch (const spec_error&) {
      throw;
    } catch (const lz::error& e) {  // a missing shard, another run's or step's shard, I/O
      log.error("checkpoint: step {} is unusable: {}; falling back to the previous committed "
                "checkpoint", record.step, e.what());
      cat.mark_corrupt(record.step, e.what());
      cat.append_event("checkpoint_unusable",
                       config::json_object().add("step", record.step).add("error", e.what()).str());
    }
  }
  return std::nullopt;
}

}  // namespace lz::checkpoint
