// The catalog actor, the one committer of a run, over real messages and a real RocksDB
// catalog: every rank asks whether a save goes ahead and all get one answer; a save due
// while one is in flight waits (when_busy = "wait") without blocking the actor; the step
// commits when every shard is durable; a report from another generation never reaches the
// committer; the end of a finished run is recorded.
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>

#include <gtest/gtest.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include "actors/caf_runtime.hpp"
#include "actors/catalog_actor.hpp"
#include "actors/messages.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

using namespace std::chrono_literals;

struct catalog_fixture {
  lz::test::temp_dir dir{"lz-catalog-actor"};
  lz::actors::caf_runtime runtime{{}};
  std::shared_ptr<spdlog::logger> log =
      std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::null_sink_mt>());
  std::shared_ptr<lz::actors::run_state> state;
  caf::actor catalog;

  catalog_fixture() {
    lz::config::run_spec spec;
    spec.checkpoint.when_busy = "wait";
    state = std::make_shared<lz::actors::run_state>(
        lz::actors::run_state::inspect(spec, dir.file("state"), "fp", {}, *log));
    state->begin(spec);
    catalog = runtime.system().spawn<caf::detached>(
        lz::actors::catalog_actor,
        lz::actors::catalog_actor_config{spec, state, {"m", 1000}, log});
  }
  ~catalog_fixture() { caf::anon_send_exit(catalog, caf::exit_reason::user_shutdown); }

  template <class Reply, class M>
  std::optional<Reply> ask(const M& m, std::chrono::milliseconds timeout = 10s) {
    caf::scoped_actor self{runtime.system()};
    std::optional<Reply> out;
    self->request(catalog, timeout, m).receive([&](Reply& r) { out = std::move(r); },
                                               [](caf::error&) {});
    return out;
  }

  // rank `rank`'s shard of `step` (world 2), reported durable from generation `g`
  void durable(int64_t g, int64_t step, int32_t rank) {
    const std::string rel = "step_" + std::to_string(step) + "/shard_" + std::to_string(rank);
    caf::anon_send(catalog, lz::msg::shard_done{g, step, {rank, rel, 100, 7, rank * 500, rank * 500 + 500}});
  }
};

TEST(catalog_actor, one_answer_for_all_ranks_and_a_commit_when_every_shard_is_durable) {
  catalog_fixture f;
  ASSERT_TRUE(f.ask<std::string>(lz::msg::start_accepted{3, 0, 2}).has_value());
  EXPECT_EQ(f.ask<bool>(lz::msg::save_begin{3, 5, 2}), std::optional<bool>(true));
  EXPECT_EQ(f.ask<bool>(lz::msg::save_begin{3, 5, 2}), std::optional<bool>(true)) << "rank 1";
  f.durable(3, 5, 0);
  f.durable(2, 5, 1);  // an older generation's report: dropped
  // a save of step 10 is due while step 5 is in flight: its answer waits, the actor does not
  caf::scoped_actor rank0{f.runtime.system()};
  std::optional<bool> answer10;
  auto pending = rank0->request(f.catalog, 30s, lz::msg::save_begin{3, 10, 2});
  EXPECT_FALSE(f.ask<bool>(lz::msg::save_begin{4, 10, 2}, 2s).has_value())
      << "a save from another generation is refused";
  f.durable(3, 5, 1);  // the last shard of step 5: it commits, and step 10 may go ahead
  pending.receive([&](bool go) { answer10 = go; }, [](caf::error&) {});
  EXPECT_EQ(answer10, std::optional<bool>(true));
  const auto committed = f.state->catalog().get(5);
  ASSERT_TRUE(committed.has_value());
  EXPECT_EQ(committed->shards.size(), 2u);
  EXPECT_FALSE(f.state->catalog().get(10).has_value());
}

TEST(catalog_actor, the_end_of_a_finished_run_is_recorded_with_its_counts) {
  catalog_fixture f;
  ASSERT_TRUE(f.ask<std::string>(lz::msg::start_accepted{0, 0, 2}).has_value());
  ASSERT_EQ(f.ask<bool>(lz::msg::save_begin{0, 5, 2}), std::optional<bool>(true));
  f.durable(0, 5, 0);
  f.durable(0, 5, 1);
  const auto counts = f.ask<lz::msg::catalog_counts>(lz::msg::run_finished{5, true});
  ASSERT_TRUE(counts.has_value());
  EXPECT_EQ(counts->committed, 1);
  EXPECT_EQ(f.state->catalog().meta(lz::actors::k_meta_finished_steps), std::optional<std::string>("5"));
}

}  // namespace
