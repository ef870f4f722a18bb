// The coordinator's recovery decisions as pure functions: the next world's size, who takes
// which rank, respawn backoff and quarantine, the hang timeout and its culprits.
#include <gtest/gtest.h>

#include "actors/recovery_plan.hpp"

namespace {

using namespace std::chrono_literals;
using lz::actors::health_clock;
using lz::actors::slot_id;
using kind = lz::actors::world_decision::kind;

TEST(next_world, the_first_world_waits_for_every_rank_of_the_spec) {
  const lz::actors::world_policy p{.min_ranks = 1, .max_ranks = 4};
  EXPECT_EQ(lz::actors::next_world(3, 0, 4, p, true).what, kind::wait) << "even after a wait";
  const auto d = lz::actors::next_world(6, 0, 4, p, false);
  EXPECT_EQ(d.what, kind::form);
  EXPECT_EQ(d.world, 4) << "not more than parallel.ranks at the start";
}

TEST(next_world, a_lost_rank_with_a_free_slot_keeps_the_size) {
  const lz::actors::world_policy p{.min_ranks = 1, .max_ranks = 4};
  const auto d = lz::actors::next_world(4, 4, 4, p, false);
  EXPECT_EQ(d.what, kind::form);
  EXPECT_EQ(d.world, 4);
}

TEST(next_world, too_few_slots_wait_for_a_replacement_then_shrink_to_min_ranks_and_no_further) {
  const lz::actors::world_policy p{.min_ranks = 2, .max_ranks = 4};
  const auto waiting = lz::actors::next_world(2, 4, 4, p, false);
  EXPECT_EQ(waiting.what, kind::wait);
  EXPECT_NE(waiting.reason.find("replacement"), std::string::npos) << waiting.reason;
  const auto shrunk = lz::actors::next_world(2, 4, 4, p, true);
  EXPECT_EQ(shrunk.what, kind::form);
  EXPECT_EQ(shrunk.world, 2);
  EXPECT_NE(shrunk.reason.find("from 4 to 2"), std::string::npos) << shrunk.reason;
  const auto stop = lz::actors::next_world(1, 4, 4, p, true);
  EXPECT_EQ(stop.what, kind::stop);
  EXPECT_NE(stop.reason.find("min_ranks is 2"), std::string::npos) << stop.reason;
}

TEST(next_world, a_shrunk_world_grows_back_up_to_max_ranks) {
  const lz::actors::world_policy p{.min_ranks = 1, .max_ranks = 4};
  const auto d = lz::actors::next_world(6, 2, 4, p, false);
  EXPECT_EQ(d.what, kind::form);
  EXPECT_EQ(d.world, 4);
  const lz::actors::world_policy wide{.min_ranks = 1, .max_ranks = 6};
  EXPECT_EQ(lz::actors::next_world(6, 4, 4, wide, false).world, 6);
}

TEST(assign_world, survivors_keep_their_ranks_and_the_dead_rank_is_respawned_in_a_free_slot) {
  // rank 1 (node 0 slot 1) died; its slot is free again
  const std::vector<lz::actors::live_worker> live{
      {.worker_id = 10, .where = {0, 0}, .old_rank = 0},
      {.worker_id = 12, .where = {1, 0}, .old_rank = 2},
      {.worker_id = 13, .where = {1, 1}, .old_rank = 3}};
  const auto a = lz::actors::assign_world(live, {{0, 1}}, 4, 4);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->worker_of_rank, (std::vector<int64_t>{10, -1, 12, 13}));
  ASSERT_EQ(a->spawns.size(), 1u);
  EXPECT_EQ(a->spawns[0].first, 1);
  EXPECT_EQ(a->spawns[0].second, (slot_id{0, 1}));
  EXPECT_TRUE(a->surplus.empty());
}

TEST(assign_world, a_shrunk_world_gives_survivors_the_lowest_ranks_in_their_old_order) {
  const std::vector<lz::actors::live_worker> live{
      {.worker_id = 13, .where = {1, 1}, .old_rank = 3},
      {.worker_id = 12, .where = {1, 0}, .old_rank = 2}};
  const auto a = lz::actors::assign_world(live, {}, 2, 4);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->worker_of_rank, (std::vector<int64_t>{12, 13}));
  EXPECT_TRUE(a->spawns.empty());
}

TEST(assign_world, growing_adds_new_processes_after_the_survivors_in_slot_order) {
  const std::vector<lz::actors::live_worker> live{
      {.worker_id = 7, .where = {1, 0}, .old_rank = 1},
      {.worker_id = 6, .where = {1, 1}, .old_rank = 0}};
  const auto a = lz::actors::assign_world(live, {{2, 1}, {2, 0}}, 4, 2);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->worker_of_rank, (std::vector<int64_t>{6, 7, -1, -1}));
  ASSERT_EQ(a->spawns.size(), 2u);
  EXPECT_EQ(a->spawns[0], (std::pair<int32_t, slot_id>{2, {2, 1}})) << "free slots in the given order";
  EXPECT_EQ(a->spawns[1], (std::pair<int32_t, slot_id>{3, {2, 0}}));
}

TEST(assign_world, too_few_workers_and_slots_form_no_world_and_extra_workers_are_surplus) {
  const std::vector<lz::actors::live_worker> live{{.worker_id = 1, .where = {0, 0}, .old_rank = 0}};
  EXPECT_FALSE(lz::actors::assign_world(live, {{0, 1}}, 3, 3).has_value());
  const std::vector<lz::actors::live_worker> three{
      {.worker_id = 1, .where = {0, 0}, .old_rank = 0},
      {.worker_id = 2, .where = {0, 1}, .old_rank = -1},
      {.worker_id = 3, .where = {0, 2}, .old_rank = 1}};
  const auto a = lz::actors::assign_world(three, {}, 2, 2);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->worker_of_rank, (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(a->surplus, (std::vector<int64_t>{2})) << "a new process is the one left over";
}

TEST(slot_health, backoff_doubles_and_a_slot_failing_past_its_retries_is_quarantined) {
  const lz::actors::respawn_policy p{.retries = 2, .backoff = 100ms};
  lz::actors::slot_health h;
  EXPECT_EQ(lz::actors::respawn_delay(h, p), 0ms);
  h = lz::actors::after_failure(h, p);
  EXPECT_EQ(lz::actors::respawn_delay(h, p), 100ms);
  EXPECT_FALSE(h.quarantined);
  h = lz::actors::after_failure(h, p);
  EXPECT_EQ(lz::actors::respawn_delay(h, p), 200ms);
  EXPECT_FALSE(h.quarantined);
  const auto healed = lz::actors::after_success(h);
  EXPECT_EQ(lz::actors::respawn_delay(healed, p), 0ms) << "a finished step resets the count";
  h = lz::actors::after_failure(h, p);
  EXPECT_TRUE(h.quarantined) << "the third failure in a row with 2 retries";
  lz::actors::slot_health many{.failures_in_row = 40};
  EXPECT_EQ(lz::actors::respawn_delay(many, p), 60000ms) << "capped at a minute";
  EXPECT_TRUE(lz::actors::after_failure({}, {.retries = 0, .backoff = 0ms}).quarantined);
}

TEST(hang_timeout, uses_the_floor_until_there_is_history_then_factor_times_p99_plus_grace) {
  const lz::actors::hang_policy p{.factor = 2.0, .grace = 1000ms, .initial = 30000ms};
  EXPECT_EQ(lz::actors::hang_timeout({}, p), 30000ms);
  EXPECT_EQ(lz::actors::hang_timeout({10, 10, 10, 10}, p), 30000ms);
  EXPECT_EQ(lz::actors::hang_timeout({10, 20, 30, 40, 50}, p), 1100ms);
  std::vector<double> steps(200, 30.0);
  steps[0] = 500.0;  // one slow step in 200 is under the p99
  EXPECT_EQ(lz::actors::hang_timeout(steps, p), 1060ms);
  steps[1] = 500.0;
  steps[2] = 500.0;  // three in 200 are above it
  EXPECT_EQ(lz::actors::hang_timeout(steps, p), 2000ms);
}

TEST(hang_timeout, p99_is_the_nearest_rank) {
  EXPECT_EQ(lz::actors::p99({}), 0.0);
  EXPECT_EQ(lz::actors::p99({7}), 7.0);
  std::vector<double> hundred;
  for (int i = 100; i >= 1; i--) hundred.push_back(i);
  EXPECT_EQ(lz::actors::p99(hundred), 99.0);
}

TEST(hang_culprits, a_silent_rank_is_blamed_before_a_busy_one_and_a_stuck_collective_blames_all) {
  const health_clock::time_point t0{};
  const auto now = t0 + 10s;
  const std::vector<lz::actors::rank_pulse> one_silent{
      {0, now - 100ms, true}, {1, now - 5s, false}, {2, now - 200ms, false}};
  EXPECT_EQ(lz::actors::hang_culprits(now, one_silent, 1000ms), (std::vector<int32_t>{1}));
  const std::vector<lz::actors::rank_pulse> one_busy{
      {0, now - 100ms, true}, {1, now - 100ms, true}, {2, now - 200ms, false}};
  EXPECT_EQ(lz::actors::hang_culprits(now, one_busy, 1000ms), (std::vector<int32_t>{2}));
  const std::vector<lz::actors::rank_pulse> all_waiting{{0, now, true}, {1, now, true}};
  EXPECT_EQ(lz::actors::hang_culprits(now, all_waiting, 1000ms), (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(lz::actors::hang_culprits(now, {{0, now - 1000ms, false}}, 1000ms),
            (std::vector<int32_t>{0})) << "exactly the limit is not silent, but it is busy";
}

}  // namespace
