// recovery_plan.cpp: see recovery_plan.hpp.
#include "actors/recovery_plan.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace lz::actors {

world_decision next_world(int32_t usable, int32_t current, int32_t first_world,
                          const world_policy& policy, bool replacement_wait_over) {
  const int32_t target = std::min(usable, policy.max_ranks);
  if (current == 0) {  // the first world: all of parallel.ranks, as the spec says
    if (usable >= first_world) return {world_decision::kind::form, first_world, "every rank has a slot"};
    return {world_decision::kind::wait, 0,
            fmt::format("{} of {} slot(s) have joined", usable, first_world)};
  }
  if (target >= current) {
    return {world_decision::kind::form, target,
            target > current ? fmt::format("growing from {} to {} rank(s)", current, target)
                             : fmt::format("{} rank(s) as before", target)};
  }
  if (!replacement_wait_over) {
    return {world_decision::kind::wait, 0,
            fmt::format("{} usable slot(s) for {} rank(s): waiting for a replacement node",
                        usable, current)};
  }
  if (target >= policy.min_ranks) {
    return {world_decision::kind::form, target,
            fmt::format("no replacement came: shrinking from {} to {} rank(s)", current, target)};
  }
  return {world_decision::kind::stop, 0,
          fmt::format("only {} usable slot(s) are left and fault_tolerance.min_ranks is {}: "
                      "start node agents with free slots, then run the same command to resume",
                      usable, policy.min_ranks)};
}

std::optional<world_assignment> assign_world(std::vector<live_worker> live,
                                             const std::vector<slot_id>& free_slots,
                                             int32_t world, int32_t old_world) {
  if (static_cast<int64_t>(live.size()) + static_cast<int64_t>(free_slots.size()) < world) {
    return std::nullopt;
  }
  std::sort(live.begin(), live.end(), [](const live_worker& a, const live_worker& b) {
    const bool a_new = a.old_rank < 0, b_new = b.old_rank < 0;
    if (a_new != b_new) return !a_new;
    if (a.old_rank != b.old_rank) return a.old_rank < b.old_rank;
    return a.where < b.where;
  });
  world_assignment out;
  out.worker_of_rank.assign(static_cast<size_t>(world), -1);
  std::vector<bool> placed(live.size(), false);
  if (world == old_world) {  // survivors keep their ranks
    for (size_t i = 0; i < live.size(); i++) {
      const int32_t r = live[i].old_rank;
      if (r >= 0 && r < world && out.worker_of_rank[static_cast<size_t>(r)] < 0) {
        out.worker_of_rank[static_cast<size_t>(r)] = live[i].worker_id;
        placed[i] = true;
      }
    }
  }
  size_t next_live = 0, next_free = 0;
  for (int32_t r = 0; r < world; r++) {
    if (out.worker_of_rank[static_cast<size_t>(r)] >= 0) continue;
    while (next_live < live.size() && placed[next_live]) next_live++;
    if (next_live < live.size()) {
      out.worker_of_rank[static_cast<size_t>(r)] = live[next_live].worker_id;
      placed[next_live] = true;
      continue;
    }
    out.spawns.emplace_back(r, free_slots[next_free++]);
  }
  for (size_t i = 0; i < live.size(); i++) {
    if (!placed[i]) out.surplus.push_back(live[i].worker_id);
  }
  return out;
}

slot_health after_failure(slot_health h, const respawn_policy& policy) {
  h.failures_in_row++;
  if (h.failures_in_row > policy.retries) h.quarantined = true;
  return h;
}

std::chrono::milliseconds respawn_delay(const slot_health& h, const respawn_policy& policy) {
  if (h.failures_in_row <= 0) return std::chrono::milliseconds(0);
  constexpr int64_t cap_ms = 60000;
  int64_t delay = policy.backoff.count();
  for (int32_t i = 1; i < h.failures_in_row && delay < cap_ms; i++) delay *= 2;
  return std::chrono::milliseconds(std::min(delay, cap_ms));
}

double p99(std::vector<double> step_ms) {
  if (step_ms.empty()) return 0.0;
  std::sort(step_ms.begin(), step_ms.end());
  // nearest rank: the smallest value with at least 99% of the values at or below it
  const auto n = static_cast<double>(step_ms.size());
  const auto index = static_cast<size_t>(std::ceil(0.99 * n)) - 1;
  return step_ms[std::min(index, step_ms.size() - 1)];
}

std::chrono::milliseconds hang_timeout(const std::vector<double>& recent_step_ms,
                                       const hang_policy& policy) {
  if (recent_step_ms.size() < k_hang_history) return policy.initial;
  const double ms = policy.factor * p99(recent_step_ms) + static_cast<double>(policy.grace.count());
  return std::chrono::milliseconds(static_cast<int64_t>(std::ceil(ms)));
}

std::vector<int32_t> hang_culprits(health_clock::time_point now,
                                   const std::vector<rank_pulse>& pulses,
                                   std::chrono::milliseconds silent_after) {
  std::vector<int32_t> silent, busy, all;
  for (const rank_pulse& p : pulses) {
    all.push_back(p.rank);
    if (now - p.last_heard > silent_after) {
      silent.push_back(p.rank);
    } else if (!p.in_collective) {
      busy.push_back(p.rank);
    }
  }
  if (!silent.empty()) return silent;
  if (!busy.empty()) return busy;
  return all;
}

}  // namespace lz::actors
