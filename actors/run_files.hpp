// run_files.hpp: names of the files in a run's state dir, in one place.
#pragma once

#include <cstdint>
#include <string>

namespace lz::actors {

inline std::string spec_path(const std::string& dir) { return dir + "/spec.toml"; }
inline std::string log_path(const std::string& dir) { return dir + "/run.log"; }
inline std::string metrics_path(const std::string& dir) { return dir + "/metrics.jsonl"; }
inline std::string summary_path(const std::string& dir) { return dir + "/summary.json"; }
inline std::string final_model_path(const std::string& dir) { return dir + "/final_model.bin"; }
inline std::string sample_path(const std::string& dir) { return dir + "/sample.txt"; }
inline std::string identity_path(const std::string& dir) { return dir + "/run_identity"; }
// The windows one worker process trained (engine/window_record.hpp).
inline std::string windows_path(const std::string& dir, int64_t generation, int32_t rank) {
  return dir + "/windows/g" + std::to_string(generation) + "-rank" + std::to_string(rank) + ".tsv";
}

// Where a run's shard files live: STATE_DIR/checkpoints, or a directory of its own under
// checkpoint.dir (named by the run id, so runs sharing checkpoint.dir never touch each
// other's files).
inline std::string checkpoint_root(const std::string& state_dir, const std::string& spec_dir,
                                   const std::string& run_id) {
  return spec_dir.empty() ? state_dir + "/checkpoints" : spec_dir + "/" + run_id;
}

}  // namespace lz::actors
