// recovery_plan.hpp: the coordinator's recovery decisions as pure functions of (now, what it
// knows, the spec's policy), so that every case is a unit test with an injected clock.
//
//   next_world      how large the next generation's world is, or whether to wait or stop
//   assign_world    which live worker takes which rank, and which ranks need a new process
//   slot_health     respawn backoff and quarantine of a slot that keeps failing
//   hang_timeout    how long the run may go without a finished step
//   hang_culprits   who is to blame when it does
#pragma once

#include <chrono>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "actors/health.hpp"

namespace lz::actors {

// Where one worker process runs: a slot (a GPU, or a CPU rank place) of a node.
struct slot_id {
  int32_t node = 0;
  int32_t slot = 0;
  auto operator<=>(const slot_id&) const = default;
};

// --- the size of the next world ------------------------------------------------------------
struct world_policy {
  int32_t min_ranks = 1;
  int32_t max_ranks = 1;
};

struct world_decision {
  enum class kind { form, wait, stop };
  kind what = kind::wait;
  int32_t world = 0;       // for form
  std::string reason;      // in words, for the log and the event
};

// `usable` slots are on live nodes and not quarantined; `current` is the world that ran last
// (0 before the first); `replacement_wait_over` once replace_timeout_ms has passed since
// the world had fewer slots than ranks. The first world waits for all of parallel.ranks
// (`first_world`); later ones grow up to max_ranks, and shrink (down to min_ranks) only
// after the wait for a replacement.
world_decision next_world(int32_t usable, int32_t current, int32_t first_world,
                          const world_policy& policy, bool replacement_wait_over);

// --- ranks of the next world ---------------------------------------------------------------
struct live_worker {
  int64_t worker_id = 0;
  slot_id where;
  int32_t old_rank = -1;   // its rank in the world that ended; -1 for a new process
};

struct world_assignment {
  // rank -> the worker that takes it, or -1 when a new process must be started for it
  std::vector<int64_t> worker_of_rank;
  // for each rank with worker -1, the slot the new process goes to (rank order)
  std::vector<std::pair<int32_t, slot_id>> spawns;
  std::vector<int64_t> surplus;  // live workers with no rank in the new world
};

// When the world keeps its size, every survivor keeps its rank (nothing to reshard for
// them); otherwise survivors take the lowest ranks in the order of their old ranks. Ranks
// left over go to new processes in the free slots in (node, slot) order. Returns nullopt when
// workers and free slots together are fewer than `world`.
std::optional<world_assignment> assign_world(std::vector<live_worker> live,
                                             const std::vector<slot_id>& free_slots,
                                             int32_t world, int32_t old_world);

// --- respawn and quarantine ------------------------------------------------------------------
struct respawn_policy {
  int32_t retries = 3;
  std::chrono::milliseconds backoff{200};
};

struct slot_health {
  int32_t failures_in_row = 0;
  bool quarantined = false;
};

// A worker in this slot failed: one more failure in a row; past `retries` it is quarantined.
slot_health after_failure(slot_health h, const respawn_policy& policy);
// A worker in this slot finished a step: the slot is healthy again.
inline slot_health after_success(slot_health h) {
  h.failures_in_row = 0;
  return h;
}
// How long to wait before starting a worker in the slot: 0 with no failures, then the
// backoff doubling with each failure in a row (at most a minute).
std::chrono::milliseconds respawn_delay(const slot_health& h, const respawn_policy& policy);

// --- hangs -----------------------------------------------------------------------------------
struct hang_policy {
  double factor = 2.0;
  std::chrono::milliseconds grace{1000};
  std::chrono::milliseconds initial{30000};  // while fewer than k_hang_history steps are timed
};
constexpr size_t k_hang_history = 5;

// The p99 (nearest rank) of `step_ms`; 0 for none.
double p99(std::vector<double> step_ms);
// factor x p99 + grace once the generation has timed k_hang_history steps, else `initial`
// (the first steps of a generation include start-up work that later steps do not).
std::chrono::milliseconds hang_timeout(const std::vector<double>& recent_step_ms,
                                       const hang_policy& policy);

struct rank_pulse {
  int32_t rank = 0;
  health_clock::time_point last_heard;  // its last heartbeat
  bool in_collective = false;         // waiting on its peers when it last said
};

// The ranks to blame for a hang: those that went silent (no heartbeat for `silent_after`:
// stopped or frozen processes), else those not waiting in a collective (stuck in their own
// work), else all of them (a stuck collective).
std::vector<int32_t> hang_culprits(health_clock::time_point now,
                                   const std::vector<rank_pulse>& pulses,
                                   std::chrono::milliseconds silent_after);

}  // namespace lz::actors
