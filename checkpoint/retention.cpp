// retention.cpp: which checkpoints to delete (see retention.hpp) -- a pure function.
#include "checkpoint/retention.hpp"

#include <algorithm>
#include <set>

#include <fmt/format.h>

namespace lz::checkpoint {

namespace {

// "80, 90, 100 (last 3)", or "" when `steps` is empty.
std::string group(const std::set<int64_t>& steps, const std::string& why) {
  if (steps.empty()) return "";
  return fmt::format("{} ({})", fmt::join(steps, ", "), why);
}

}  // namespace

retention_decision choose_deletions(const std::vector<checkpoint_record>& checkpoints,
                                    const retention_policy& policy) {
  const int64_t keep_last = std::max<int64_t>(policy.keep_last, 0);
  const int64_t keep_every = std::max<int64_t>(policy.keep_every, 0);

  std::vector<const checkpoint_record*> committed;  // ascending by step
  for (const checkpoint_record& c : checkpoints) {
    if (c.status == checkpoint_status::committed) committed.push_back(&c);
  }
  std::sort(committed.begin(), committed.end(),
            [](const checkpoint_record* a, const checkpoint_record* b) {
              return a->step < b->step;
            });

  // Each kept step is named once, under the first reason that keeps it.
  std::set<int64_t> kept;
  std::set<int64_t> last;
  std::set<int64_t> every;
  std::set<int64_t> verified;
  std::set<int64_t> corrupt;
  const size_t window = static_cast<size_t>(keep_last);
  const size_t first_of_last = committed.size() > window ? committed.size() - window : 0;
  for (size_t i = first_of_last; i < committed.size(); ++i) {
    last.insert(committed[i]->step);
    kept.insert(committed[i]->step);
  }
  if (keep_every > 0) {
    for (const checkpoint_record* c : committed) {
      if (c->step % keep_every == 0 && kept.insert(c->step).second) every.insert(c->step);
    }
  }
  const auto newest_verified = std::find_if(committed.rbegin(), committed.rend(),
                                            [](const checkpoint_record* c) { return c->verified; });
  if (newest_verified != committed.rend() && kept.insert((*newest_verified)->step).second) {
    verified.insert((*newest_verified)->step);
  }

  // A corrupt checkpoint goes once a newer committed one exists; until then it stays (it is
  // the only trace of the newest save, and deleting it frees nothing that can be restored).
  const int64_t newest_committed = committed.empty() ? -1 : committed.back()->step;
  retention_decision decision;
  for (const checkpoint_record& c : checkpoints) {
    if (kept.count(c.step) != 0) continue;
    if (c.status == checkpoint_status::corrupt && c.step > newest_committed) {
      corrupt.insert(c.step);
      continue;
    }
    decision.delete_steps.push_back(c.step);
  }
  std::sort(decision.delete_steps.begin(), decision.delete_steps.end());
  auto& steps = decision.delete_steps;
  steps.erase(std::unique(steps.begin(), steps.end()), steps.end());

  std::vector<std::string> groups;
  for (const std::string& g : {group(last, fmt::format("last {}", keep_last)),
                               group(every, fmt::format("every {}", keep_every)),
                               group(verified, "newest verified"),
                               group(corrupt, "corrupt, no newer committed checkpoint")}) {
    if (!g.empty()) groups.push_back(g);
  }
  if (!groups.empty()) {
    decision.reason = fmt::format("keeping steps {}", fmt::join(groups, ", "));
  } else {
    decision.reason = committed.empty() ? "keeping no steps (no committed checkpoints)"
                                        : "keeping no steps (the policy keeps none)";
  }
  return decision;
}

}  // namespace lz::checkpoint
