// Retention: which checkpoints are deleted, and that nothing the policy keeps ever is.
#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <set>
#include <vector>

#include <gtest/gtest.h>

#include "checkpoint/retention.hpp"

namespace {

using lz::checkpoint::checkpoint_record;
using lz::checkpoint::checkpoint_status;
using lz::checkpoint::choose_deletions;
using lz::checkpoint::retention_decision;
using lz::checkpoint::retention_policy;

std::vector<checkpoint_record> committed_steps(std::initializer_list<int64_t> steps) {
  std::vector<checkpoint_record> out;
  for (int64_t s : steps) {
    checkpoint_record c;
    c.step = s;
    out.push_back(c);
  }
  return out;
}

checkpoint_record& at_step(std::vector<checkpoint_record>& cs, int64_t step) {
  auto it = std::find_if(cs.begin(), cs.end(), [&](const checkpoint_record& c) {
    return c.step == step;
  });
  EXPECT_NE(it, cs.end()) << "no step " << step;
  return *it;
}

using steps = std::vector<int64_t>;

TEST(retention, keep_last_deletes_everything_older) {
  const auto cs = committed_steps({10, 20, 30, 40, 50});
  const retention_decision d = choose_deletions(cs, {.keep_last = 3, .keep_every = 0});
  EXPECT_EQ(d.delete_steps, (steps{10, 20}));
  EXPECT_EQ(d.reason, "keeping steps 30, 40, 50 (last 3)");
}

TEST(retention, keep_every_spares_multiples_outside_the_window) {
  const auto cs = committed_steps({10, 20, 30, 40, 50, 60, 70, 80, 90, 100});
  const retention_decision d = choose_deletions(cs, {.keep_last = 2, .keep_every = 30});
  EXPECT_EQ(d.delete_steps, (steps{10, 20, 40, 50, 70, 80}));
  EXPECT_EQ(d.reason, "keeping steps 90, 100 (last 2), 30, 60 (every 30)");
}

TEST(retention, newest_verified_survives_outside_the_keep_last_window) {
  auto cs = committed_steps({10, 20, 30, 40, 50, 60, 70, 80, 90, 100});
  at_step(cs, 40).verified = true;
  at_step(cs, 70).verified = true;  // the newest verified: 40 is older and may go
  const retention_decision d = choose_deletions(cs, {.keep_last = 3, .keep_every = 50});
  EXPECT_EQ(d.delete_steps, (steps{10, 20, 30, 40, 60}));
  EXPECT_EQ(d.reason, "keeping steps 80, 90, 100 (last 3), 50 (every 50), 70 (newest verified)");
}

TEST(retention, verified_corrupt_checkpoint_is_not_the_newest_verified) {
  auto cs = committed_steps({10, 20, 30, 40});
  at_step(cs, 10).verified = true;
  at_step(cs, 20).verified = true;
  at_step(cs, 20).status = checkpoint_status::corrupt;
  const retention_decision d = choose_deletions(cs, {.keep_last = 1, .keep_every = 0});
  EXPECT_EQ(d.delete_steps, (steps{20, 30}));
}

TEST(retention, corrupt_checkpoint_deleted_once_a_newer_committed_one_exists) {
  auto cs = committed_steps({10, 20, 30});
  at_step(cs, 20).status = checkpoint_status::corrupt;
  const retention_decision d = choose_deletions(cs, {.keep_last = 3, .keep_every = 0});
  EXPECT_EQ(d.delete_steps, (steps{20}));
  EXPECT_EQ(d.reason, "keeping steps 10, 30 (last 3)");
}

TEST(retention, newest_corrupt_checkpoint_stays_until_something_newer_commits) {
  auto cs = committed_steps({10, 20, 30});
  at_step(cs, 30).status = checkpoint_status::corrupt;
  const retention_decision d = choose_deletions(cs, {.keep_last = 1, .keep_every = 0});
  EXPECT_EQ(d.delete_steps, (steps{10}));
  EXPECT_NE(d.reason.find("30 (corrupt"), std::string::npos) << d.reason;
}

TEST(retention, fewer_than_keep_last_deletes_nothing) {
  EXPECT_TRUE(choose_deletions(committed_steps({5, 10}), {.keep_last = 3}).delete_steps.empty());
  const retention_decision empty = choose_deletions({}, {.keep_last = 3});
  EXPECT_TRUE(empty.delete_steps.empty());
  EXPECT_EQ(empty.reason, "keeping no steps (no committed checkpoints)");
}

// Over a grid of policies and histories: ascending, unique, and never a step kept by a rule.
TEST(retention, deletions_are_ascending_and_never_a_kept_step) {
  for (int64_t keep_last : {0, 1, 2, 5}) {
    for (int64_t keep_every : {0, 3, 7}) {
      for (int pattern = 0; pattern < 16; ++pattern) {
        std::vector<checkpoint_record> cs;
        for (int64_t s = 1; s <= 20; ++s) {
          checkpoint_record c;
          c.step = s;
          c.verified = (s * (pattern + 1)) % 5 == 0;
          if ((s + pattern) % 6 == 0) c.status = checkpoint_status::corrupt;
          cs.push_back(c);
        }
        const retention_decision d = choose_deletions(cs, {keep_last, keep_every});
        SCOPED_TRACE(d.reason);
        EXPECT_TRUE(std::is_sorted(d.delete_steps.begin(), d.delete_steps.end()));
        EXPECT_EQ(std::set<int64_t>(d.delete_steps.begin(), d.delete_steps.end()).size(),
                  d.delete_steps.size());
        const std::set<int64_t> deleted(d.delete_steps.begin(), d.delete_steps.end());
        std::vector<int64_t> committed;
        int64_t newest_verified = -1;
        for (const auto& c : cs) {
          if (c.status != checkpoint_status::committed) continue;
          committed.push_back(c.step);
          if (c.verified) newest_verified = c.step;
          if (keep_every > 0 && c.step % keep_every == 0) {
            EXPECT_EQ(deleted.count(c.step), 0u) << "step " << c.step;
          }
        }
        for (size_t i = 0; i < committed.size(); ++i) {
          if (committed.size() - i <= static_cast<size_t>(keep_last)) {
            EXPECT_EQ(deleted.count(committed[i]), 0u) << "step " << committed[i];
          } else if (committed[i] != newest_verified &&
                     (keep_every == 0 || committed[i] % keep_every != 0)) {
            EXPECT_EQ(deleted.count(committed[i]), 1u) << "step " << committed[i];
          }
        }
        if (newest_verified >= 0) {
          EXPECT_EQ(deleted.count(newest_verified), 0u) << "step " << newest_verified;
        }
      }
    }
  }
}

}  // namespace
