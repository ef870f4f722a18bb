// fault_hook.hpp: named fault points for crash-consistency and disk-full tests.
//
// The environment variable LAZARUS_FAULT arms one point:
//   LAZARUS_FAULT="NAME[@STEP][#RANK][:ACTION]"
// NAME is a point such as "shard.after_fsync"; STEP (optional) restricts it to the save or
// step with that number, RANK to the rank of that number (points that know their rank);
// ACTION is "kill" (SIGKILL this process, the default), "term"
// (SIGTERM, which a run handles by stopping cleanly), "enospc" (the write at that point
// fails as if the disk were full) or "nan" (this rank's loss at that step is NaN, once). Unset, every point is a no-op
// costing one comparison. Points are listed where they are placed (grep fault_point).
#pragma once

#include <cstdint>
#include <string_view>

namespace lz::checkpoint {

enum class fault_action { none, kill, term, enospc, nan };

// What the armed fault says for this point and step (none when it does not match).
fault_action fault_at(std::string_view point, int64_t step, int32_t rank = -1);

// Sends this process SIGKILL (action kill) or SIGTERM (action term) when the armed fault is
// `point` (at `step`), the first time only.
void fault_point(std::string_view point, int64_t step, int32_t rank = -1);

// True when the armed fault is `point` (at `step`) with action enospc: the caller then fails
// the operation with ENOSPC exactly as a full disk would.
bool fault_enospc(std::string_view point, int64_t step, int32_t rank = -1);

// True, the first time only, when the armed fault is `point` (at `step`) with action nan:
// the caller makes this rank's loss non-finite.
bool fault_nan(std::string_view point, int64_t step, int32_t rank = -1);

}  // namespace lz::checkpoint
