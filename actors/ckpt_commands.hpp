// ckpt_commands.hpp: `lazarus ckpt ls | verify | inspect | export` on a state dir.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace lz::actors {

struct ckpt_command_options {
  std::string state_dir;
  std::string checkpoint_dir;       // "" : STATE_DIR/checkpoints
  std::optional<int64_t> step;      // one checkpoint (verify, inspect, export)
  bool json = false;
};

// Each prints to stdout and returns the process exit code.
int ckpt_ls(const ckpt_command_options& o);
int ckpt_verify(const ckpt_command_options& o);   // non-zero when any shard fails
int ckpt_inspect(const ckpt_command_options& o);
int ckpt_export_llmc(const ckpt_command_options& o, const std::string& out_path);

}  // namespace lz::actors
