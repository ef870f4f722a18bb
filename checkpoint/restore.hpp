// restore.hpp: loading the newest good checkpoint, falling back past bad ones.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <spdlog/logger.h>

#include "checkpoint/catalog.hpp"
#include "checkpoint/shard_format.hpp"

namespace lz::checkpoint {

// Where one tensor of the checkpoint goes: `want.size()` floats.
struct restore_target {
  std::string name;  // "params", "adam_m", "adam_v"
  float* out = nullptr;
};

// What the caller's run must match; a checkpoint of another model is a spec_error, not
// corruption (nothing is marked, nothing falls back).
struct restore_expectation {
  std::string model;       // shard_meta::model
  int64_t flat_total = 0;
};

struct restored_checkpoint {
  checkpoint_record record;
  shard_meta meta;
};

// Tries the committed checkpoints newest first: opens the shards (any world size at save),
// reads elements [want) of every target, verifying the checksum of every chunk read. A
// checkpoint whose shard is missing, truncated, corrupt or inconsistent is marked corrupt in
// the catalog with the reason, recorded as a "checkpoint_unusable" event, logged with the
// file and tensor, and the previous one is tried. Returns nullopt when none is usable (or
// none exists).
std::optional<restored_checkpoint> restore_latest(catalog& cat, const std::string& root_dir,
                                                  flat_range want,
                                                  const std::vector<restore_target>& targets,
                                                  const restore_expectation& expect,
                                                  spdlog::logger& log);

}  // namespace lz::checkpoint
