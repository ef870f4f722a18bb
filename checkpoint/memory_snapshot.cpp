// memory_snapshot.cpp: the in-memory restore points' decisions (see memory_snapshot.hpp).
#include "checkpoint/memory_snapshot.hpp"

#include <algorithm>
#include <map>
#include <set>

#include "config/error.hpp"

namespace lz::checkpoint {

void held_copy::resize(flat_range r) {
  range = r;
  const auto n = static_cast<size_t>(r.size());
  params.resize(n);
  adam_m.resize(n);
  adam_v.resize(n);
}

namespace {

// Whether the copies `held[i]` for i in `use` cover [0, total).
bool covers(const std::vector<held_range>& held, const std::vector<size_t>& use, int64_t total) {
  std::vector<flat_range> ranges;
  for (size_t i : use) ranges.push_back(held[i].range);
  std::sort(ranges.begin(), ranges.end(), [](const flat_range& a, const flat_range& b) {
    return a.begin < b.begin;
  });
  int64_t reached = 0;
  for (const flat_range& r : ranges) {
    if (r.begin > reached) break;
    reached = std::max(reached, r.end);
  }
  return reached >= total;
}

}  // namespace

std::optional<int64_t> newest_covered_step(const std::vector<held_range>& held, int64_t total) {
  std::map<int64_t, std::vector<size_t>, std::greater<>> by_step;
  for (size_t i = 0; i < held.size(); i++) {
    if (held[i].step >= 0 && held[i].range.size() > 0) by_step[held[i].step].push_back(i);
  }
  for (const auto& [step, use] : by_step) {
    if (covers(held, use, total)) return step;
  }
  return std::nullopt;
}

std::vector<memory_piece> plan_memory_restore(const std::vector<held_range>& held,
                                              const std::vector<std::vector<flat_range>>& wanted) {
  std::vector<memory_piece> pieces;
  for (size_t to = 0; to < wanted.size(); to++) {
    for (const flat_range& want : wanted[to]) {
      int64_t at = want.begin;
      while (at < want.end) {
        // the copy that holds `at`: this rank's own first, else the lowest rank's
        std::optional<size_t> best;
        for (size_t i = 0; i < held.size(); i++) {
          const held_range& h = held[i];
          if (h.range.begin > at || h.range.end <= at) continue;
          const bool mine = h.rank == static_cast<int32_t>(to);
          if (!best) {
            best = i;
            continue;
          }
          const held_range& b = held[*best];
          const bool best_mine = b.rank == static_cast<int32_t>(to);
          if ((mine && !best_mine) ||
              (mine == best_mine && std::tie(h.rank, h.which) < std::tie(b.rank, b.which))) {
            best = i;
          }
        }
        if (!best) {
          LZ_THROW(lz::error, "no rank holds element {} of the flat vector in memory: the "
                   "restore needs the disk path", at);
        }
        const int64_t end = std::min(want.end, held[*best].range.end);
        pieces.push_back({static_cast<int32_t>(to), *best, {at, end}});
        at = end;
      }
    }
  }
  return pieces;
}

int32_t replica_shift(const std::vector<int32_t>& node_of) {
  const auto world = static_cast<int32_t>(node_of.size());
  int32_t best = 0, best_remote = -1;
  for (int32_t shift = 1; shift < world; shift++) {
    int32_t remote = 0;
    for (int32_t r = 0; r < world; r++) {
      if (node_of[static_cast<size_t>(r)] != node_of[static_cast<size_t>((r + shift) % world)]) remote++;
    }
    if (remote > best_remote) {
      best = shift;
      best_remote = remote;
    }
  }
  return best;
}

}  // namespace lz::checkpoint
