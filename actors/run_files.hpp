// run_files.hpp: names of the files in a run's state dir, in one place.
#pragma once

#include <string>

namespace lz::actors {

inline std::string spec_path(const std::string& dir) { return dir + "/spec.toml"; }
inline std::string log_path(const std::string& dir) { return dir + "/run.log"; }
inline std::string metrics_path(const std::string& dir) { return dir + "/metrics.jsonl"; }
inline std::string summary_path(const std::string& dir) { return dir + "/summary.json"; }
inline std::string final_model_path(const std::string& dir) { return dir + "/final_model.bin"; }
inline std::string sample_path(const std::string& dir) { return dir + "/sample.txt"; }

}  // namespace lz::actors
