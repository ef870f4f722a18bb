// fault_hook.hpp: named fault points for crash-consistency, disk-full and recovery tests.
//
// The environment variable LAZARUS_FAULT arms one or more points, separated by commas:
//   LAZARUS_FAULT="NAME[@STEP][#RANK][%GEN][:ACTION],..."
// NAME is a point such as "shard.after_fsync"; STEP (optional) restricts it to the save or
// step with that number, RANK to the rank of that number (points that know their rank), GEN
// to workers of that world, counted from this start of the run (default 0, the first:
// workers started by a recovery do not repeat a fault unless it names their world). ACTION is "kill" (SIGKILL this process, the
// default), "term" (SIGTERM, which a run handles by stopping cleanly), "stop" (SIGSTOP: a
// hung process), "enospc" (the write at that point fails as if the disk were full) or "nan"
// (this rank's loss at that step is NaN). Each armed fault fires at most once per process.
// Unset, every point is a no-op costing one comparison. Points are listed where they are
// placed (grep fault_point).
#pragma once

#include <cstdint>
#include <string_view>

namespace lz::checkpoint {

enum class fault_action { none, kill, term, stop, enospc, nan };

// Which world of this start of the run this process belongs to (a worker's); faults with
// %GEN match against it.
void set_fault_generation(int64_t generation);

// What the armed faults say for this point and step (none when none matches).
fault_action fault_at(std::string_view point, int64_t step, int32_t rank = -1);

// Sends this process SIGKILL, SIGTERM or SIGSTOP when an armed fault with that action is
// `point` (at `step`), the first time only.
void fault_point(std::string_view point, int64_t step, int32_t rank = -1);

// True when an armed fault is `point` (at `step`) with action enospc: the caller then fails
// the operation with ENOSPC exactly as a full disk would.
bool fault_enospc(std::string_view point, int64_t step, int32_t rank = -1);

// True, the first time only, when an armed fault is `point` (at `step`) with action nan:
// the caller makes this rank's loss non-finite.
bool fault_nan(std::string_view point, int64_t step, int32_t rank = -1);

}  // namespace lz::checkpoint
