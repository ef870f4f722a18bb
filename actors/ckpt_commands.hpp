// ckpt_commands.hpp: `lazarus ckpt ls | verify | inspect | events | export | rebuild-catalog`
// on a state dir. The catalog records where its checkpoints are; checkpoint_dir overrides it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace lz::actors {

struct ckpt_command_options {
  std::string state_dir;
  std::string checkpoint_dir;       // "" : where the catalog recorded the checkpoints
  std::optional<int64_t> step;      // one checkpoint (verify, inspect, export)
  bool json = false;
};

// Each prints to stdout and returns the process exit code.
int ckpt_ls(const ckpt_command_options& o);
int ckpt_verify(const ckpt_command_options& o);   // non-zero when any shard fails
int ckpt_inspect(const ckpt_command_options& o);
int ckpt_events(const ckpt_command_options& o);
// Non-zero when no complete checkpoint was found.
int ckpt_rebuild_catalog(const ckpt_command_options& o);
int ckpt_export_llmc(const ckpt_command_options& o, const std::string& out_path);

}  // namespace lz::actors
