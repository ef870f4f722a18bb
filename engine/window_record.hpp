// window_record.hpp: the record of the training windows a rank actually trained.
//
// A batch_source in front of the rank's own: every (step, slot) it fills is remembered with
// a hash of its tokens (XXH3 of inputs and targets), and a step that finished (not one that
// was discarded and tried again) is appended to the record file as one line per slot:
//
//   GENERATION STEP SLOT HASH      (STEP 1-based, HASH 16 hex digits)
//
// Each worker process writes its own file. The final history of a run is, for each step,
// the lines of the last generation that trained it: a later generation restored from an
// earlier step and trained the steps after it again. That history holds every (step, slot)
// exactly once when no window was skipped or trained twice, and each hash equals that of an
// uninterrupted run when the data order stayed the spec's.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <string>

#include "engine/dataset.hpp"

namespace lz::engine {

class window_record final : public batch_source {
public:
  // Appends to `path` (created with its directory when missing); throws io_error when it
  // cannot be opened. Each fill is `tokens_per_fill` (B x T) inputs and as many targets.
  window_record(batch_source& inner, const std::string& path, int64_t generation,
                int64_t tokens_per_fill);
  ~window_record() override;
  window_record(const window_record&) = delete;
  window_record& operator=(const window_record&) = delete;

  void fill(int64_t step, int64_t slot, int32_t* inputs, int32_t* targets) override;
  // Step `step` (0-based, as fill() saw it) finished: its windows go to the file.
  void finished(int64_t step);

private:
  batch_source& inner_;
  std::FILE* file_ = nullptr;
  std::string path_;
  int64_t generation_ = 0;
  int64_t rows_ = 0;                            // inputs per fill (B x T)
  std::map<std::pair<int64_t, int64_t>, uint64_t> pending_;  // (step, slot) -> hash
};

}  // namespace lz::engine
